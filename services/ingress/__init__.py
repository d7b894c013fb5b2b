"""Webhook ingress: Exotel status callbacks in (HTTP), ``call.status`` facts out (Kafka).

Layers: ``app`` (composition root, thin HTTP route) -> ``service`` (parse, publish,
dead-letter; no HTTP) -> ``sinks`` (ports and their Kafka adapter). ``parsing`` is pure.
See README.md beside this file.
"""
