"""The metrics service's Prometheus metrics, on an explicit registry.

Business metrics (what the facts say) are ``voicebus_*``; the service's own health is
``voicebus_metrics_*``. Every label is from a closed set (command type, outcome, API,
normalised status, error code, topic, consumer group, configured account name): never a
call sid, a command id or a phone number.
"""

from __future__ import annotations

from itertools import product
from typing import Final, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from contracts.catalog import COMMANDS
from contracts.commands import CommandType
from contracts.results import Outcome
from contracts.status import TERMINAL_STATUSES
from contracts.topics import DLQ_TOPICS, FACT_TOPICS

CALL_APIS: Final = ("v1", "v2", "v3")
STATUS_APIS: Final = (*CALL_APIS, "lwb")
EVENT_TYPES: Final = ("answered", "terminal")
SOURCES: Final = ("callback", "poll")
#: a call flow's Passthru notification: its one (api, event_type, source) label set
FLOW_LABELS: Final = ("passthru", "flow", "callback")

COMMAND_DURATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TALK_BUCKETS: Final = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
RING_BUCKETS: Final = (1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120)
TERMINAL_DELAY_BUCKETS: Final = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)


class FactMetrics:
    """What the fact topics say, counted once per fact (see services/metrics/README.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # -- commands (the three *.result topics) -------------------------------------
        self.commands = Counter(
            "voicebus_commands",
            "Command results, by command type, account, Exotel API (none: not a call) and outcome.",
            ["command_type", "account", "api", "outcome"],
            registry=registry,
        )
        self.command_errors = Counter(
            "voicebus_command_errors",
            "Rejected or failed commands, by command type and voicebus error code.",
            ["command_type", "code"],
            registry=registry,
        )
        self.command_duration = Histogram(
            "voicebus_command_duration_seconds",
            "Time from a command's publication (requested_at) to its result (completed_at).",
            ["command_type", "outcome"],
            buckets=COMMAND_DURATION_BUCKETS,
            registry=registry,
        )
        #: results labelled from their command (the command table's ``result_label``)
        self.labelled: dict[str, Counter] = {
            spec.name: Counter(
                spec.result_label.metric,
                spec.result_label.documentation,
                [spec.result_label.name, "outcome"],
                registry=registry,
            )
            for spec in COMMANDS
            if spec.result_label is not None
        }
        # -- calls (call.status) ---------------------------------------------------------
        self.status_events = Counter(
            "voicebus_call_status_events",
            "call.status facts (distinct event_id), by API, event type and source "
            "(callback: Exotel called us; poll: fetched by the missing-callback poller).",
            ["api", "event_type", "source"],
            registry=registry,
        )
        self.flow_calls = Counter(
            "voicebus_flow_calls",
            "Calls seen in a call flow's Passthru (distinct call sid; inbound calls and "
            "connect-to-flow calls). A flow event is never counted as an ended call.",
            registry=registry,
        )
        self.call_outcomes = Counter(
            "voicebus_call_outcomes",
            "Calls ended, by API and normalised terminal status (first terminal fact per call).",
            ["api", "status"],
            registry=registry,
        )
        self.talk_time = Histogram(
            "voicebus_call_talk_seconds",
            "Conversation duration of completed calls.",
            ["api"],
            buckets=TALK_BUCKETS,
            registry=registry,
        )
        self.ring_time = Histogram(
            "voicebus_call_ring_seconds",
            "Time from the call's start (its accepted result, else Exotel's start time) to "
            "its first answered callback.",
            ["api"],
            buckets=RING_BUCKETS,
            registry=registry,
        )
        self.result_to_terminal = Histogram(
            "voicebus_call_result_to_terminal_seconds",
            "Time from an accepted call.connect result to the call's terminal status fact.",
            ["source"],
            buckets=TERMINAL_DELAY_BUCKETS,
            registry=registry,
        )
        self.awaiting_terminal = Gauge(
            "voicebus_calls_awaiting_terminal",
            "Accepted calls seen by this replica with no terminal status yet.",
            registry=registry,
        )
        self.overdue_terminal = Gauge(
            "voicebus_calls_terminal_overdue",
            "Accepted calls with no terminal status for longer than "
            "METRICS_TERMINAL_OVERDUE_SECONDS.",
            registry=registry,
        )
        self.terminal_missing = Counter(
            "voicebus_calls_terminal_missing",
            "Accepted calls forgotten after METRICS_CALL_STATE_TTL_SECONDS with no terminal "
            "status ever seen.",
            registry=registry,
        )
        # -- dead letters ----------------------------------------------------------------
        self.dlq_messages = Counter(
            "voicebus_dlq_messages",
            "Messages written to a dead-letter topic, by DLQ topic.",
            ["topic"],
            registry=registry,
        )
        # -- the service itself ----------------------------------------------------------
        self.facts_consumed = Counter(
            "voicebus_metrics_messages_consumed",
            "Messages read by the metrics service, by topic.",
            ["topic"],
            registry=registry,
        )
        self.unreadable = Counter(
            "voicebus_metrics_messages_unreadable",
            "Messages the metrics service could not read (not a valid fact), by topic.",
            ["topic"],
            registry=registry,
        )
        self.duplicates = Counter(
            "voicebus_metrics_duplicates",
            "Facts skipped as already counted (same event_id, command result or DLQ origin "
            "within the dedupe window), by topic.",
            ["topic"],
            registry=registry,
        )
        self.state_evictions = Counter(
            "voicebus_metrics_state_evictions",
            "Per-call or per-command state dropped to stay within its bound, by state.",
            ["state"],
            registry=registry,
        )
        self.call_state_entries = Gauge(
            "voicebus_metrics_call_state_entries",
            "Calls held in the per-call state map.",
            registry=registry,
        )
        self._initialise()

    def _initialise(self) -> None:
        """Create the known label sets at zero, so rate() and alerts see them from the start."""
        for topic in FACT_TOPICS:
            self.facts_consumed.labels(topic)
        for topic in DLQ_TOPICS:
            self.dlq_messages.labels(topic)
        outcomes = get_args(Outcome)
        for api, event_type, source in product(STATUS_APIS, EVENT_TYPES, SOURCES):
            self.status_events.labels(api, event_type, source)
        self.status_events.labels(*FLOW_LABELS)
        for api, status in product(CALL_APIS, sorted(TERMINAL_STATUSES)):
            self.call_outcomes.labels(api, status)
        for source in SOURCES:
            self.result_to_terminal.labels(source)
        for command_type, outcome in product(get_args(CommandType), outcomes):
            self.command_duration.labels(command_type, outcome)
        for spec in COMMANDS:
            labels = spec.result_label.values if spec.result_label is not None else ()
            for label, outcome in product(labels, outcomes):
                self.labelled[spec.name].labels(label, outcome)


class LagMetrics:
    """Consumer lag of the voicebus consumer groups (see services/metrics/lag.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            "voicebus_consumer_group_lag_messages",
            "Messages not yet committed by a consumer group, by group and topic "
            "(end offset minus committed offset, summed over partitions).",
            ["group", "topic"],
            registry=registry,
        )
        self.checks = Counter(
            "voicebus_metrics_lag_checks",
            "Consumer-lag checks, by outcome (ok, failed).",
            ["outcome"],
            registry=registry,
        )
        self.last_check = Gauge(
            "voicebus_metrics_lag_last_success_timestamp_seconds",
            "Unix time of the last successful consumer-lag check.",
            registry=registry,
        )
        for outcome in ("ok", "failed"):
            self.checks.labels(outcome)


class ServiceMetrics:
    """Everything the metrics service exposes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.facts = FactMetrics(registry)
        self.lag = LagMetrics(registry)
        self.ready = Gauge(
            "voicebus_metrics_ready",
            "1 when the metrics service is consuming.",
            registry=registry,
        )
