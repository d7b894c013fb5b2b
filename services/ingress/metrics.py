"""The ingress's Prometheus metrics (bounded labels only: never a sid or a number)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX: Final = "voicebus_ingress_"
REJECT_REASONS: Final = ("unauthorized", "too_large", "unreadable", "unavailable")
APIS: Final = ("v1", "v2", "v3", "lwb")
EVENT_TYPES: Final = ("answered", "terminal")
PUBLISH_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            f"{PREFIX}callbacks_received_total",
            "Readable Exotel status callbacks, by API and event type.",
            ["api", "event_type"],
            registry=registry,
        )
        self.rejected = Counter(
            f"{PREFIX}callbacks_rejected_total",
            "Callbacks answered with an error: unauthorized (401), too_large (413), "
            "unreadable (400), unavailable (503: Kafka did not take it in time).",
            ["reason"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            f"{PREFIX}publish_duration_seconds",
            "Time from publishing a call.status fact to Kafka's acknowledgement.",
            ["outcome"],
            buckets=PUBLISH_BUCKETS,
            registry=registry,
        )
        self.dlq_writes = Counter(
            f"{PREFIX}dlq_writes_total",
            "Unreadable callbacks written to call.status.dlq, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.ready = Gauge(
            f"{PREFIX}ready",
            "1 when Kafka is connected and the topics exist.",
            registry=registry,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for api in APIS:
            for event_type in EVENT_TYPES:
                self.received.labels(api, event_type)
        for outcome in ("ok", "failed"):
            self.dlq_writes.labels(outcome)
