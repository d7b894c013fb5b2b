"""The metrics service: every fact topic and DLQ, counted into Prometheus metrics.

``python -m services.metrics`` consumes ``*.result``, ``call.status`` and the ``*.dlq``
topics in its own consumer group (``METRICS_GROUP_ID``, default ``voicebus-metrics``) and
serves ``/metrics``, ``/healthz`` and ``/readyz`` on ``HTTP_PORT`` (default 9100). The
metric names, the state it keeps and what a restart does are in ``README.md`` beside this
file.
"""
