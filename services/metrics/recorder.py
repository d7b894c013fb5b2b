"""Fact -> metric mapping: pure logic, no Kafka, no I/O.

:class:`FactRecorder` is handed every message the metrics service reads (topic, value,
headers) and updates :class:`~services.metrics.metrics.FactMetrics`. It keeps bounded
state only:

* a window of recently counted ids (``event_id`` of ``call.status`` facts,
  ``command_type:command_id`` of results, ``details_id`` of ``call.details`` facts, the
  DLQ origin ``topic/partition/offset``) so a fact delivered twice (a retried callback, a
  replay after a rebalance, a backfill page published again) counts once;
* per call (``call_sid``): when its ``call.connect`` was accepted, whether a call flow's
  Passthru reported it (a ``flow`` event, never an ended call), whether it was answered
  and whether its terminal status was counted, for ring time, time to terminal and the
  calls still awaiting a terminal status;
* per ``lwb.action`` / ``leg.hangup`` command (``command_id``): the monitor mode or leg it
  asked for, joined with its result (results do not carry them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import structlog
from pydantic import ValidationError

from contracts.catalog import COMMANDS, spec_for
from contracts.details import CallDetails
from contracts.results import CommandResult
from contracts.status import CallStatusEvent
from contracts.topics import CALL_DETAILS, CALL_STATUS, DLQ_TOPICS, RESULT_TOPIC
from services.common.bounded import Clock, RecentIds, TtlLru
from services.metrics.metrics import FactMetrics

log = structlog.get_logger(__name__)

RESULT_TOPICS: Final = frozenset(RESULT_TOPIC.values())
DLQ_TOPIC_SET: Final = frozenset(DLQ_TOPICS)
#: Command topics read only to learn the label their result lacks (mode, leg).
LABEL_TOPICS: Final = tuple(spec.topic for spec in COMMANDS if spec.result_label is not None)
#: How long a command's label waits for its result (and a result for its command).
JOIN_TTL_SECONDS: Final = 900.0

Recorded = Literal[
    "counted", "duplicate", "unreadable", "ignored", "repeated_terminal", "label", "pending"
]


@dataclass
class CallState:
    """What the recorder remembers about one call (bounded by :class:`TtlLru`)."""

    accepted_at: datetime | None = None
    flow_seen: bool = False
    answered: bool = False
    terminal_counted: bool = False
    terminal_at: datetime | None = None
    terminal_source: str | None = None
    delay_observed: bool = False


@dataclass(frozen=True)
class RecorderLimits:
    dedupe_window: int = 100_000
    call_state_max: int = 100_000
    call_state_ttl_seconds: float = 6 * 3600.0
    terminal_overdue_seconds: float = 3600.0


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _seconds(start: datetime, end: datetime) -> float:
    return (_aware(end) - _aware(start)).total_seconds()


class FactRecorder:
    """Counts each fact once; see the module docstring for the state it keeps."""

    def __init__(
        self,
        metrics: FactMetrics,
        limits: RecorderLimits | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.limits = limits or RecorderLimits()
        self._seen = RecentIds(self.limits.dedupe_window)
        self.calls: TtlLru[str, CallState] = TtlLru(
            self.limits.call_state_max,
            self.limits.call_state_ttl_seconds,
            clock,
            on_evict=self._call_evicted,
        )
        self.awaiting: TtlLru[str, None] = TtlLru(
            self.limits.call_state_max,
            self.limits.call_state_ttl_seconds,
            clock,
            on_evict=self._awaiting_evicted,
        )
        self._labels: TtlLru[str, str] = TtlLru(
            self.limits.dedupe_window, JOIN_TTL_SECONDS, clock, on_evict=self._label_evicted
        )
        self._pending: TtlLru[str, tuple[str, str]] = TtlLru(
            self.limits.dedupe_window, JOIN_TTL_SECONDS, clock, on_evict=self._pending_evicted
        )
        metrics.awaiting_terminal.set_function(lambda: len(self.awaiting))
        metrics.overdue_terminal.set_function(
            lambda: self.awaiting.older_than(self.limits.terminal_overdue_seconds)
        )
        metrics.call_state_entries.set_function(lambda: len(self.calls))

    # ------------------------------------------------------------------ entry point
    def record(
        self, topic: str, value: bytes | None, headers: Mapping[str, bytes] | None = None
    ) -> Recorded:
        """Count one message read from ``topic``."""
        self.metrics.facts_consumed.labels(topic).inc()
        if topic in DLQ_TOPIC_SET:
            return self._dead_letter(topic, headers or {})
        if topic == CALL_STATUS:
            try:
                event = CallStatusEvent.model_validate_json(value or b"")
            except ValidationError:
                return self._unreadable(topic)
            return self._status(topic, event)
        if topic in RESULT_TOPICS:
            try:
                result = CommandResult.model_validate_json(value or b"")
            except ValidationError:
                return self._unreadable(topic)
            return self._result(topic, result)
        if topic == CALL_DETAILS:
            try:
                details = CallDetails.model_validate_json(value or b"")
            except ValidationError:
                return self._unreadable(topic)
            return self._details(topic, details)
        if topic in LABEL_TOPICS:
            return self._command(topic, value)
        return "ignored"

    def expire(self) -> None:
        """Drop state past its TTL (also done on every access); call it periodically."""
        for table in (self.calls, self.awaiting, self._labels, self._pending):
            table.expire()

    # ------------------------------------------------------------------ facts
    def _unreadable(self, topic: str) -> Recorded:
        self.metrics.unreadable.labels(topic).inc()
        log.warning("metrics.unreadable_fact", topic=topic)
        return "unreadable"

    def _duplicate(self, topic: str, key: str) -> bool:
        if self._seen.seen_before(key):
            self.metrics.duplicates.labels(topic).inc()
            return True
        return False

    def _dead_letter(self, topic: str, headers: Mapping[str, bytes]) -> Recorded:
        origin = tuple(
            headers.get(name, b"").decode(errors="replace")
            for name in ("origin_topic", "origin_partition", "origin_offset")
        )
        if all(origin) and self._duplicate(topic, "dlq\x1f" + "\x1f".join(origin)):
            return "duplicate"
        self.metrics.dlq_messages.labels(topic).inc()
        return "counted"

    def _result(self, topic: str, result: CommandResult) -> Recorded:
        if self._duplicate(topic, f"result\x1f{result.command_type}\x1f{result.command_id}"):
            return "duplicate"
        m = self.metrics
        m.commands.labels(
            result.command_type, result.account, result.api or "none", result.outcome
        ).inc()
        if result.error is not None:
            m.command_errors.labels(result.command_type, result.error.code).inc()
            if result.error.code == "dnd_blocked":
                m.dnd_rejections.labels(result.account).inc()
        if result.number is not None:
            source = "cache" if result.number.cached else "exotel"
            m.number_lookups.labels(result.command_type, result.account, source).inc()
        if result.requested_at is not None:
            elapsed = _seconds(result.requested_at, result.completed_at)
            m.command_duration.labels(result.command_type, result.outcome).observe(
                max(elapsed, 0.0)
            )
        spec = spec_for(result.command_type)
        if spec is not None and spec.places_call:
            if result.outcome == "accepted" and result.call_sid:
                self._accepted(result.call_sid, _aware(result.completed_at))
        elif spec is not None and spec.result_label is not None:
            label = self._labels.pop(result.command_id)
            if label is None:
                self._pending.put(result.command_id, (result.command_type, result.outcome))
                return "pending"
            self._count_labelled(result.command_type, label, result.outcome)
        return "counted"

    def _details(self, topic: str, details: CallDetails) -> Recorded:
        if self._duplicate(topic, f"details\x1f{details.details_id}"):
            return "duplicate"
        self.metrics.call_details.labels(details.source, details.api).inc()
        if details.status == "completed" and details.price is None:
            self.metrics.call_details_unpriced.labels(details.source).inc()
        return "counted"

    def _accepted(self, call_sid: str, accepted_at: datetime) -> None:
        state = self.calls.get(call_sid)
        if state is None:
            state = CallState()
            self.calls.put(call_sid, state)
        state.accepted_at = accepted_at
        if state.terminal_counted:
            # The terminal status was read first (different topics are not ordered).
            self._observe_delay(state)
        else:
            self.awaiting.put(call_sid, None)

    def _status(self, topic: str, event: CallStatusEvent) -> Recorded:
        if self._duplicate(topic, f"status\x1f{event.event_id}"):
            return "duplicate"
        m = self.metrics
        m.status_events.labels(event.api, event.event_type, event.source).inc()
        if event.leg_sid is not None or event.api == "lwb":
            return "counted"  # a leg's event: counted above, the call's own state is apart
        state = self.calls.get(event.call_sid)
        if state is None:
            state = CallState()
            self.calls.put(event.call_sid, state)
        if event.event_type == "flow":
            # A Passthru says where the call is in its flow, never that it ended (even with
            # status completed): its end comes as a terminal fact (callback or poll).
            if not state.flow_seen:
                state.flow_seen = True
                m.flow_calls.inc()
            return "counted"
        if event.event_type == "answered":
            if not state.answered:
                state.answered = True
                start = state.accepted_at or event.started_at
                if start is not None:
                    ring = _seconds(start, event.received_at)
                    if ring >= 0:
                        m.ring_time.labels(event.api).observe(ring)
            return "counted"
        if state.terminal_counted:
            return "repeated_terminal"  # e.g. a late callback after the poller's status
        state.terminal_counted = True
        state.terminal_at = event.received_at
        state.terminal_source = event.source
        self.awaiting.pop(event.call_sid)
        m.call_outcomes.labels(event.api, event.status).inc()
        if event.status == "completed" and event.conversation_duration is not None:
            m.talk_time.labels(event.api).observe(event.conversation_duration)
        self._observe_delay(state)
        return "counted"

    def _observe_delay(self, state: CallState) -> None:
        if state.delay_observed or state.accepted_at is None or state.terminal_at is None:
            return
        state.delay_observed = True
        delay = max(_seconds(state.accepted_at, state.terminal_at), 0.0)
        self.metrics.result_to_terminal.labels(state.terminal_source or "callback").observe(delay)

    # ------------------------------------------------------------------ command labels
    def _command(self, topic: str, value: bytes | None) -> Recorded:
        try:
            body = json.loads(value or b"")
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            return "ignored"  # the executor dead-letters it; its DLQ counts it
        if not isinstance(body, dict) or not isinstance(body.get("command_id"), str):
            return "ignored"
        command_id: str = body["command_id"]
        spec = spec_for(topic)
        if spec is None or spec.result_label is None:
            return "ignored"
        label = spec.result_label.of(body)
        pending = self._pending.pop(command_id)
        if pending is None:
            self._labels.put(command_id, label)
            return "label"
        self._count_labelled(pending[0], label, pending[1])
        return "counted"

    def _count_labelled(self, command_type: str, label: str, outcome: str) -> None:
        self.metrics.labelled[command_type].labels(label, outcome).inc()

    # ------------------------------------------------------------------ evictions
    def _call_evicted(self, _key: str, _state: CallState, reason: str) -> None:
        if reason == "size":
            self.metrics.state_evictions.labels("calls").inc()

    def _awaiting_evicted(self, _key: str, _value: None, reason: str) -> None:
        if reason == "ttl":
            self.metrics.terminal_missing.inc()
        else:
            self.metrics.state_evictions.labels("awaiting_terminal").inc()

    def _label_evicted(self, _key: str, _label: str, reason: str) -> None:
        if reason == "size":
            self.metrics.state_evictions.labels("command_labels").inc()

    def _pending_evicted(self, _key: str, pending: tuple[str, str], reason: str) -> None:
        # The command itself was never read (or came too late): count with an unknown label.
        if reason == "size":
            self.metrics.state_evictions.labels("pending_results").inc()
        self._count_labelled(pending[0], "unknown", pending[1])
