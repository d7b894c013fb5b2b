"""The ingress's Prometheus metrics (bounded labels only: never a sid or a number)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX: Final = "voicebus_ingress_"
REJECT_REASONS: Final = (
    "unauthorized",
    "bad_signature",
    "too_large",
    "unreadable",
    "unavailable",
)
SPOOL_TOPICS: Final = ("call.status", "call.status.dlq")
APIS: Final = ("v1", "v2", "v3", "lwb")
EVENT_TYPES: Final = ("answered", "terminal")
#: a call flow's Passthru notification (on either endpoint) has one label pair
FLOW_LABELS: Final = ("passthru", "flow")
ENDPOINTS: Final = ("callbacks", "passthru")
ANSWER_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
PUBLISH_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            f"{PREFIX}callbacks_received_total",
            "Readable Exotel status callbacks and flow notifications, by API and event type "
            "(passthru/flow: a call flow's Passthru applet).",
            ["api", "event_type"],
            registry=registry,
        )
        self.rejected = Counter(
            f"{PREFIX}callbacks_rejected_total",
            "Callbacks answered with an error: unauthorized (401: unknown token), "
            "bad_signature (401: sig does not match the correlation), too_large (413), "
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
        self.answer_seconds = Histogram(
            f"{PREFIX}answer_duration_seconds",
            "Time from a request's arrival to its answer, by endpoint (passthru: what a "
            "sync Passthru's caller waits).",
            ["endpoint"],
            buckets=ANSWER_BUCKETS,
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
        self.spool_depth = Gauge(
            f"{PREFIX}spool_depth",
            "Records in the local spool not yet acknowledged by Kafka.",
            registry=registry,
        )
        self.spooled = Counter(
            f"{PREFIX}spooled_total",
            "Records written to the local spool because Kafka did not take them in time.",
            ["topic"],
            registry=registry,
        )
        self.replayed = Counter(
            f"{PREFIX}replayed_total",
            "Spooled records replayed to Kafka and acknowledged.",
            ["topic"],
            registry=registry,
        )
        self.spool_rejected = Counter(
            f"{PREFIX}spool_rejected_total",
            "Spooled records Kafka refused for good (kept in rejected.jsonl).",
            registry=registry,
        )
        for topic in SPOOL_TOPICS:
            self.spooled.labels(topic)
            self.replayed.labels(topic)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for api in APIS:
            for event_type in EVENT_TYPES:
                self.received.labels(api, event_type)
        self.received.labels(*FLOW_LABELS)
        for endpoint in ENDPOINTS:
            self.answer_seconds.labels(endpoint)
        for outcome in ("ok", "failed"):
            self.dlq_writes.labels(outcome)
