"""The executor's Prometheus metrics, on an explicit registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.exotel.errors import ExotelError, ExotelRateLimited, ExotelTimeout


class ExecutorMetrics:
    """Bounded labels only: command type, outcome, account name, endpoint, status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.commands = Counter(
            "voicebus_executor_commands",
            "Commands finished, by type and outcome.",
            ["command_type", "outcome", "account"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "voicebus_executor_dead_letters",
            "Unreadable commands sent to a DLQ.",
            ["topic"],
            registry=registry,
        )
        self.duplicates = Counter(
            "voicebus_executor_duplicate_commands",
            "Commands already done (redelivered or published twice): result re-emitted, "
            "no request to Exotel.",
            ["command_type"],
            registry=registry,
        )
        self.in_doubt = Counter(
            "voicebus_executor_in_doubt_commands",
            "Commands whose intent was recorded but not their outcome (reconciled).",
            ["command_type"],
            registry=registry,
        )
        self.exotel_requests = Histogram(
            "voicebus_executor_exotel_request_duration_seconds",
            "Exotel API request latency, by endpoint and HTTP status.",
            ["account", "endpoint", "method", "status"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.rate_limited = Counter(
            "voicebus_executor_exotel_rate_limited",
            "HTTP 429 answers from Exotel.",
            ["command_type"],
            registry=registry,
        )
        self.retries = Counter(
            "voicebus_executor_retries",
            "Exotel requests retried, by reason.",
            ["command_type", "reason"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "voicebus_executor_in_flight_commands",
            "Commands queued or running.",
            registry=registry,
        )
        self.max_in_flight = Gauge(
            "voicebus_executor_max_in_flight_commands",
            "The configured concurrency bound.",
            registry=registry,
        )

        self.limiter_wait = Histogram(
            "voicebus_executor_rate_limiter_wait_seconds",
            "Time a request waited for the rate limiter, by account and API family.",
            ["account", "family"],
            buckets=(0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.rate_share = Gauge(
            "voicebus_executor_rate_limit_share",
            "This replica's share of each account's Exotel rate limit (partitions owned).",
            registry=registry,
        )
        self.rate_share.set(1.0)
        self.call_watch_polls = Counter(
            "voicebus_executor_call_watch_polls",
            "Call-details polls of calls missing a terminal callback, by outcome "
            "(terminal, active, error; unknown: a call first seen by Passthru that the "
            "account's call details do not know, dropped).",
            ["outcome"],
            registry=registry,
        )
        self.call_watch_recovered = Counter(
            "voicebus_executor_call_watch_recovered",
            "Terminal call.status facts published from polls (the callback never came).",
            registry=registry,
        )
        self.call_watch_watched = Gauge(
            "voicebus_executor_call_watch_watched_calls",
            "Accepted calls of this replica's partitions awaiting a terminal status.",
            registry=registry,
        )

    def limiter_waited(self, account: str, family: str, seconds: float) -> None:
        self.limiter_wait.labels(account, family).observe(seconds)

    # ExecutorObserver
    def retried(self, command_type: str, error: ExotelError) -> None:
        if isinstance(error, ExotelRateLimited):
            reason = "rate_limited"
            self.rate_limited.labels(command_type).inc()
        elif isinstance(error, ExotelTimeout):
            reason = "timeout"
        else:
            reason = "unavailable"
        self.retries.labels(command_type, reason).inc()

    # services.exotel RequestObserver
    def observe(
        self, *, account: str, endpoint: str, method: str, status: int | None, seconds: float
    ) -> None:
        self.exotel_requests.labels(account, endpoint, method, str(status or "none")).observe(
            seconds
        )
