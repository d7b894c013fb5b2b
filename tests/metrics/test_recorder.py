"""The fact -> metric mapping, on real facts (the ingress's parse of Exotel's samples and
CommandResults as the executor serialises them)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from contracts import CallStatusEvent
from services.ingress.parsing import parse_passthru
from services.metrics.metrics import FactMetrics
from services.metrics.recorder import JOIN_TTL_SECONDS, FactRecorder, RecorderLimits
from tests.ingress.samples import query_payload
from tests.metrics.facts import IST, T0, result, sample_event, status_json


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recorder(registry: CollectorRegistry, clock: FakeClock) -> FactRecorder:
    limits = RecorderLimits(
        dedupe_window=1000,
        call_state_max=100,
        call_state_ttl_seconds=600,
        terminal_overdue_seconds=60,
    )
    return FactRecorder(FactMetrics(registry), limits, clock=clock)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


# ---------------------------------------------------------------------------- results


def test_result_counts_by_type_account_api_and_outcome(recorder, registry):
    assert recorder.record("call.connect.result", result(api="v3", account="sales")) == "counted"
    labels = {"command_type": "call.connect", "account": "sales", "api": "v3"}
    assert value(registry, "voicebus_commands_total", **labels, outcome="accepted") == 1
    hist = {"command_type": "call.connect", "outcome": "accepted"}
    assert value(registry, "voicebus_command_duration_seconds_count", **hist) == 1
    assert value(registry, "voicebus_command_duration_seconds_sum", **hist) == pytest.approx(0.4)


def test_rejected_result_counts_its_error_code(recorder, registry):
    recorder.record(
        "call.connect.result",
        result(outcome="rejected", call_sid=None, error_code="exotel_rejected"),
    )
    assert (
        value(
            registry,
            "voicebus_command_errors_total",
            command_type="call.connect",
            code="exotel_rejected",
        )
        == 1
    )


def test_result_without_requested_at_has_no_duration(recorder, registry):
    recorder.record("call.connect.result", result(requested_at=None))
    hist = {"command_type": "call.connect", "outcome": "accepted"}
    assert value(registry, "voicebus_command_duration_seconds_count", **hist) == 0
    assert value(registry, "voicebus_calls_awaiting_terminal") == 1


def test_the_same_result_twice_counts_once(recorder, registry):
    assert recorder.record("call.connect.result", result()) == "counted"
    assert recorder.record("call.connect.result", result()) == "duplicate"
    labels = {"command_type": "call.connect", "account": "default", "api": "v1"}
    assert value(registry, "voicebus_commands_total", **labels, outcome="accepted") == 1
    assert value(registry, "voicebus_metrics_duplicates_total", topic="call.connect.result") == 1


def test_non_call_results_have_api_none(recorder, registry):
    recorder.record("leg.hangup.result", result("leg.hangup", command_id="h-1"))
    labels = {"command_type": "leg.hangup", "account": "default", "api": "none"}
    assert value(registry, "voicebus_commands_total", **labels, outcome="accepted") == 1


def test_unreadable_fact_is_counted_apart(recorder, registry):
    assert recorder.record("call.connect.result", b"{not json") == "unreadable"
    assert recorder.record("call.status", b'{"event_id": "x"}') == "unreadable"
    assert value(registry, "voicebus_metrics_messages_unreadable_total", topic="call.status") == 1
    assert value(registry, "voicebus_metrics_messages_consumed_total", topic="call.status") == 1


# ---------------------------------------------------------------------------- call.status


def test_status_events_count_by_api_event_type_and_source(recorder, registry):
    recorder.record("call.status", status_json(sample_event("v2_answered_agent.json")))
    recorder.record("call.status", status_json(sample_event("v3_terminal.json", source="poll")))
    name = "voicebus_call_status_events_total"
    assert value(registry, name, api="v2", event_type="answered", source="callback") == 1
    assert value(registry, name, api="v3", event_type="terminal", source="poll") == 1


def test_terminal_counts_outcome_and_talk_time(recorder, registry):
    recorder.record("call.status", status_json(sample_event("v3_terminal.json")))
    recorder.record("call.status", status_json(sample_event("v1_terminal.json")))
    assert value(registry, "voicebus_call_outcomes_total", api="v3", status="completed") == 1
    assert value(registry, "voicebus_call_outcomes_total", api="v1", status="no-answer") == 1
    # talk time only for completed calls
    assert value(registry, "voicebus_call_talk_seconds_sum", api="v3") == 11
    assert value(registry, "voicebus_call_talk_seconds_count", api="v1") == 0


def test_duplicate_event_id_counts_once(recorder, registry):
    fact = status_json(sample_event("v2_terminal.json"))
    assert recorder.record("call.status", fact) == "counted"
    assert recorder.record("call.status", fact) == "duplicate"
    assert value(registry, "voicebus_call_outcomes_total", api="v2", status="completed") == 1
    assert value(registry, "voicebus_metrics_duplicates_total", topic="call.status") == 1


def test_a_second_terminal_for_a_call_counts_as_event_not_outcome(recorder, registry):
    first = sample_event("v2_terminal.json", source="poll", event_id="poll-1")
    late = sample_event("v2_terminal.json")
    recorder.record("call.status", status_json(first))
    assert recorder.record("call.status", status_json(late)) == "repeated_terminal"
    assert value(registry, "voicebus_call_outcomes_total", api="v2", status="completed") == 1
    events = "voicebus_call_status_events_total"
    assert value(registry, events, api="v2", event_type="terminal", source="poll") == 1
    assert value(registry, events, api="v2", event_type="terminal", source="callback") == 1


def test_monitor_leg_events_do_not_end_the_call(recorder, registry):
    leg = sample_event("lwb_monitor_terminal.json")
    recorder.record("call.connect.result", result(call_sid=leg.call_sid))
    recorder.record("call.status", status_json(leg))
    name = "voicebus_call_status_events_total"
    assert value(registry, name, api="lwb", event_type="terminal", source="callback") == 1
    assert value(registry, "voicebus_calls_awaiting_terminal") == 1
    assert (
        registry.get_sample_value(
            "voicebus_call_outcomes_total", {"api": "lwb", "status": "completed"}
        )
        is None
    )


def flow_event(name: str, **changes: Any) -> CallStatusEvent:
    """A Passthru notification sample as the ingress publishes it."""
    event = parse_passthru(query_payload(name), query={}, received_at=T0, tz=IST)
    return event.model_copy(update=changes) if changes else event


def test_a_flow_event_is_never_counted_as_an_ended_call(recorder, registry):
    completed = flow_event("passthru_after_connect.query.txt")
    assert completed.status == "completed"
    recorder.record("call.connect.result", result(call_sid=completed.call_sid))
    assert recorder.record("call.status", status_json(completed)) == "counted"
    events = "voicebus_call_status_events_total"
    assert value(registry, events, api="passthru", event_type="flow", source="callback") == 1
    assert value(registry, "voicebus_call_outcomes_total", api="v1", status="completed") == 0
    assert value(registry, "voicebus_calls_awaiting_terminal") == 1, "still awaiting its end"


def test_flow_calls_count_once_per_call_and_their_end_counts_as_an_outcome(recorder, registry):
    recorder.record("call.status", status_json(flow_event("passthru_before_connect.query.txt")))
    recorder.record("call.status", status_json(flow_event("passthru_after_connect.query.txt")))
    assert value(registry, "voicebus_flow_calls_total") == 1
    end = sample_event(
        "v1_terminal.json",
        call_sid=flow_event("passthru_after_connect.query.txt").call_sid,
        source="poll",
        event_id="poll-in",
        status="completed",
    )
    assert recorder.record("call.status", status_json(end)) == "counted"
    assert value(registry, "voicebus_call_outcomes_total", api="v1", status="completed") == 1


def test_result_to_terminal_and_ring_time(recorder, registry):
    answered = sample_event("v2_answered_agent.json")
    sid = answered.call_sid
    recorder.record("call.connect.result", result(call_sid=sid, api="v2"))  # accepted at T0+0.4
    assert value(registry, "voicebus_calls_awaiting_terminal") == 1
    recorder.record(
        "call.status",
        status_json(
            sample_event("v2_answered_agent.json", received_at=T0 + timedelta(seconds=8.4))
        ),
    )
    # the customer leg's answered event is not a second ring
    recorder.record(
        "call.status",
        status_json(
            sample_event("v2_answered_customer.json", received_at=T0 + timedelta(seconds=20))
        ),
    )
    terminal = sample_event(
        "v2_terminal.json", call_sid=sid, received_at=T0 + timedelta(seconds=90.4)
    )
    recorder.record("call.status", status_json(terminal))
    assert value(registry, "voicebus_call_ring_seconds_count", api="v2") == 1
    assert value(registry, "voicebus_call_ring_seconds_sum", api="v2") == pytest.approx(8.0)
    delay = {"source": "callback"}
    assert value(registry, "voicebus_call_result_to_terminal_seconds_sum", **delay) == 90
    assert value(registry, "voicebus_calls_awaiting_terminal") == 0


def test_ring_time_falls_back_to_exotel_start_time(recorder, registry):
    event = sample_event("v2_answered_agent.json")
    assert event.started_at is not None
    answered = event.model_copy(update={"received_at": event.started_at + timedelta(seconds=7)})
    recorder.record("call.status", status_json(answered))
    assert value(registry, "voicebus_call_ring_seconds_sum", api="v2") == pytest.approx(7)


def test_terminal_read_before_its_result_still_gives_the_delay(recorder, registry):
    terminal = sample_event("v3_terminal.json", received_at=T0 + timedelta(seconds=30.4))
    recorder.record("call.status", status_json(terminal))
    recorder.record("call.connect.result", result(call_sid=terminal.call_sid, api="v3"))
    delay = {"source": "callback"}
    assert value(registry, "voicebus_call_result_to_terminal_seconds_sum", **delay) == 30
    assert value(registry, "voicebus_calls_awaiting_terminal") == 0


def test_overdue_and_missing_terminals(recorder, registry, clock):
    recorder.record("call.connect.result", result(call_sid="a", command_id="c-a"))
    clock.now += 50
    recorder.record("call.connect.result", result(call_sid="b", command_id="c-b"))
    assert value(registry, "voicebus_calls_terminal_overdue") == 0
    clock.now += 20  # a: 70 s > 60 s overdue; b: 20 s
    assert value(registry, "voicebus_calls_terminal_overdue") == 1
    assert value(registry, "voicebus_calls_awaiting_terminal") == 2
    clock.now += 540  # a: 610 s > 600 s TTL: forgotten without a terminal
    recorder.expire()
    assert value(registry, "voicebus_calls_terminal_missing_total") == 1
    assert value(registry, "voicebus_calls_awaiting_terminal") == 1


# ---------------------------------------------------------------------------- labels joined


def lwb_command(command_id: str, action: str) -> bytes:
    return json.dumps(
        {"command_id": command_id, "call_sid": "sid-1", "action": action, "supervisor": "+91"}
    ).encode()


def test_lwb_actions_by_mode(recorder, registry):
    assert recorder.record("lwb.action", lwb_command("l-1", "whisper")) == "label"
    recorder.record("lwb.action.result", result("lwb.action", command_id="l-1"))
    assert value(registry, "voicebus_lwb_actions_total", mode="whisper", outcome="accepted") == 1


def test_lwb_result_before_its_command(recorder, registry):
    recorder.record(
        "lwb.action.result",
        result("lwb.action", "rejected", command_id="l-2", error_code="illegal_transition"),
    )
    assert recorder.record("lwb.action", lwb_command("l-2", "barge")) == "counted"
    assert value(registry, "voicebus_lwb_actions_total", mode="barge", outcome="rejected") == 1


def test_result_whose_command_never_shows_counts_as_unknown(recorder, registry, clock):
    recorder.record("leg.hangup.result", result("leg.hangup", command_id="h-9"))
    clock.now += JOIN_TTL_SECONDS + 1
    recorder.expire()
    assert value(registry, "voicebus_leg_hangups_total", leg="unknown", outcome="accepted") == 1


@pytest.mark.parametrize(
    ("command", "leg"),
    [
        ({"leg": "customer"}, "customer"),
        ({"leg_sid": "abc"}, "sid"),
        ({"leg": "everyone"}, "invalid"),
    ],
)
def test_hangups_by_leg(recorder, registry, command, leg):
    body = json.dumps({"command_id": "h-1", "call_sid": "sid-1", **command}).encode()
    recorder.record("leg.hangup", body)
    recorder.record("leg.hangup.result", result("leg.hangup", command_id="h-1"))
    assert value(registry, "voicebus_leg_hangups_total", leg=leg, outcome="accepted") == 1


def test_unreadable_commands_are_left_to_their_dlq(recorder):
    assert recorder.record("lwb.action", b"\xff") == "ignored"
    assert recorder.record("leg.hangup", b"[1]") == "ignored"


# ---------------------------------------------------------------------------- dead letters


def test_dead_letters_by_topic_once_per_origin(recorder, registry):
    headers = {
        "error": b"not JSON",
        "origin_topic": b"call.connect",
        "origin_partition": b"3",
        "origin_offset": b"17",
    }
    assert recorder.record("call.connect.dlq", b"\xff", headers) == "counted"
    assert recorder.record("call.connect.dlq", b"\xff", headers) == "duplicate"
    # without origin headers (the ingress's own dead letters) every message counts
    recorder.record("call.status.dlq", b"garbage", {"error": b"unreadable"})
    recorder.record("call.status.dlq", b"garbage", {"error": b"unreadable"})
    assert value(registry, "voicebus_dlq_messages_total", topic="call.connect.dlq") == 1
    assert value(registry, "voicebus_dlq_messages_total", topic="call.status.dlq") == 2


def test_known_series_exist_at_zero(registry, recorder):
    assert (
        registry.get_sample_value("voicebus_dlq_messages_total", {"topic": "lwb.action.dlq"}) == 0
    )
    assert (
        registry.get_sample_value("voicebus_call_outcomes_total", {"api": "v1", "status": "busy"})
        == 0
    )


def test_dedupe_window_is_bounded(registry, clock):
    recorder = FactRecorder(
        FactMetrics(registry), RecorderLimits(dedupe_window=2, call_state_max=10), clock=clock
    )
    first = status_json(sample_event("v3_terminal.json"))
    recorder.record("call.status", first)
    for n in range(2):
        recorder.record(
            "call.status", status_json(sample_event("v1_terminal.json", event_id=f"e{n}"))
        )
    # the first id fell out of the window: counted as an event again (never as an outcome)
    assert recorder.record("call.status", first) == "repeated_terminal"
