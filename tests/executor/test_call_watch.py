"""Missing-callback recovery: which calls are overdue, backoff, the poll fact, and the
runner's reading and sweeping with a fake Exotel and a fake Kafka publisher."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts.status import CallStatusEvent
from contracts.topics import CALL_CONNECT_RESULT, CALL_STATUS
from services.common.call_status import normalise_status
from services.common.settings import KafkaSettings
from services.executor.call_watch import (
    MAX_CALL_SECONDS,
    CallWatch,
    PollOutcome,
    WatchedCall,
    WatchPolicy,
    poll_event,
    poll_event_id,
)
from services.executor.call_watch_kafka import (
    CE_SOURCE,
    CallWatchRunner,
    WatchAccount,
    fact_headers,
)
from services.executor.settings import ExecutorSettings
from services.exotel.accounts import ApiVersion
from services.exotel.errors import ExotelUnavailable
from services.exotel.models import CallDetails
from tests.support.exotel import FakeExotel, not_found
from tests.support.watch import Clock, FakeMetrics, Published, accepted_result, record

DATA = Path(__file__).resolve().parents[1] / "data" / "exotel"
IST = ZoneInfo("Asia/Kolkata")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def sample(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def v1_details() -> CallDetails:
    return CallDetails.from_v1_response(sample("v1_call_details_details_corrected.json"), IST)


def v3_details(name: str = "v3_call_details_terminal.json") -> CallDetails:
    return CallDetails.from_ccm("v3", sample(name), IST)


def watch(after: float = 900, **policy: Any) -> CallWatch:
    return CallWatch(WatchPolicy(after_seconds=after, **policy))


def accept(
    w: CallWatch, sid: str, at: datetime = T0, *, partition: int = 0, now: datetime | None = None
) -> bool:
    return w.accepted(
        sid,
        account="default",
        api="v1",
        command_id=f"cmd-{sid}",
        accepted_at=at,
        partition=partition,
        now=now or at,
    )


def watched(sid: str = "CA1", api: ApiVersion = "v1") -> WatchedCall:
    return WatchedCall(
        call_sid=sid,
        account="default",
        api=api,
        command_id="cmd-1",
        accepted_at=T0,
        partition=0,
        due_at=T0,
        give_up_at=T0,
    )


# ------------------------------------------------------------------ overdue selection


def test_a_call_is_due_after_the_configured_time_and_not_before() -> None:
    w = watch(after=900)
    assert accept(w, "CA1")
    assert w.due(T0 + timedelta(seconds=899)) == []
    (due,) = w.due(T0 + timedelta(seconds=900))
    assert due.call_sid == "CA1"
    assert due.command_id == "cmd-CA1"


def test_due_calls_come_oldest_first_and_respect_the_limit() -> None:
    w = watch(after=10)
    accept(w, "late", T0 + timedelta(seconds=5))
    accept(w, "early", T0)
    accept(w, "fresh", T0 + timedelta(seconds=100))
    now = T0 + timedelta(seconds=20)
    assert [c.call_sid for c in w.due(now)] == ["early", "late"]
    assert [c.call_sid for c in w.due(now, limit=1)] == ["early"]


def test_a_terminal_status_clears_the_call_even_when_read_before_the_acceptance() -> None:
    w = watch(after=10)
    accept(w, "CA1")
    assert w.finished("CA1", T0 + timedelta(seconds=1)) is True
    assert len(w) == 0
    # call.status is read in parallel with call.connect.result: a terminal first
    assert w.finished("CA2", T0) is False
    assert accept(w, "CA2") is False
    assert w.due(T0 + timedelta(hours=1)) == []


def test_a_re_emitted_result_does_not_watch_twice() -> None:
    w = watch(after=10)
    assert accept(w, "CA1") is True
    assert accept(w, "CA1", T0 + timedelta(seconds=30)) is False
    (call,) = w.due(T0 + timedelta(seconds=10))
    assert call.accepted_at == T0


def test_calls_older_than_the_horizon_are_neither_watched_nor_kept() -> None:
    w = watch(after=10, horizon_seconds=3600)
    assert accept(w, "old", T0, now=T0 + timedelta(hours=2)) is False
    accept(w, "CA1", T0)
    w.finished("CA2", T0)
    assert w.prune(T0 + timedelta(minutes=30)) == 0
    assert w.prune(T0 + timedelta(hours=1, seconds=1)) == 1
    assert len(w) == 0
    assert accept(w, "CA2", T0 + timedelta(hours=2), now=T0 + timedelta(hours=2)) is True


def test_revoked_partitions_take_their_calls_along() -> None:
    w = watch()
    accept(w, "p0", partition=0)
    accept(w, "p1", partition=1)
    accept(w, "p2", partition=2)
    assert w.drop_partitions([0, 2]) == 2
    assert "p1" in w
    assert len(w) == 1


def test_a_call_being_polled_is_not_due_again() -> None:
    w = watch(after=10)
    accept(w, "CA1")
    now = T0 + timedelta(seconds=10)
    w.polling("CA1")
    assert w.due(now) == []
    w.polled("CA1", "active", now)
    assert w.due(now + timedelta(seconds=10))


# ------------------------------------------------------------------ backoff


def test_still_active_calls_are_rechecked_with_doubling_backoff_up_to_the_cap() -> None:
    policy = WatchPolicy(after_seconds=900)
    assert [policy.active_backoff(n) for n in (1, 2, 3, 4, 10)] == [900, 1800, 1800, 1800, 1800]
    short = WatchPolicy(after_seconds=2)
    assert [short.active_backoff(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert short.active_backoff(100) == 1800


def test_errors_are_retried_sooner_than_active_calls() -> None:
    policy = WatchPolicy(after_seconds=900)
    assert [policy.error_backoff(n) for n in (1, 2, 3)] == [30, 60, 120]
    assert policy.error_backoff(50) == 1800
    assert WatchPolicy(after_seconds=2).error_backoff(1) == 2


def test_an_active_call_is_watched_up_to_the_longest_call_then_given_up() -> None:
    w = watch(after=900)
    accept(w, "CA1")
    now = T0 + timedelta(seconds=900)
    polls = 0
    while True:
        (call,) = w.due(now)
        polls += 1
        w.polling("CA1")
        if not w.polled("CA1", "active", now):
            break
        assert call.due_at > now
        now = call.due_at
    assert now >= T0 + timedelta(seconds=MAX_CALL_SECONDS + 900)
    assert now <= T0 + timedelta(seconds=MAX_CALL_SECONDS + 900 + 1)
    assert "CA1" not in w
    # 15 min, 30 min, 1 h, then every 30 min until 4 h 15 min: a handful of requests
    assert 8 <= polls <= 10


def test_a_terminal_poll_finishes_the_call() -> None:
    w = watch(after=10)
    accept(w, "CA1")
    now = T0 + timedelta(seconds=10)
    w.polling("CA1")
    assert w.polled("CA1", "terminal", now) is True
    assert "CA1" not in w
    assert accept(w, "CA1", now=now) is False  # our own poll event, read back later


def test_an_error_reschedules_and_an_active_answer_resets_the_error_count() -> None:
    w = watch(after=900)
    accept(w, "CA1")
    now = T0 + timedelta(seconds=900)
    outcomes: list[PollOutcome] = ["error", "error"]
    for outcome in outcomes:
        w.polled("CA1", outcome, now)
    call = w.get("CA1")
    assert call is not None
    assert call.errors == 2
    assert call.due_at == now + timedelta(seconds=60)
    w.polled("CA1", "active", now)
    assert call.errors == 0
    assert call.polls == 1


# ------------------------------------------------------------------ the poll fact


def test_v1_details_make_a_terminal_poll_event_with_legs_and_offsets() -> None:
    details = v1_details()
    call = watched(details.call_sid)
    received = T0 + timedelta(minutes=15)
    event = poll_event(call, details, received_at=received)

    assert event.source == "poll"
    assert event.event_type == "terminal"
    assert event.status == "completed"
    assert event.exotel_status == "completed"
    assert event.api == "v1"
    assert event.call_sid == "b6cfaf5f5cef3ca0fc937749ef96d245"
    assert event.leg_sid is None
    assert event.command_id == "cmd-1"
    assert event.account == "default"
    assert event.direction == "outbound-api"
    assert event.from_ == "0XXXXX85175"
    assert event.to == "0XXXXX30240"
    assert event.caller_id == "0XXXXXX4890"
    assert event.conversation_duration == 8
    assert event.recording_url is not None
    assert event.recording_url.endswith("b6cfaf5f5cef3ca0fc937749ef96d245.mp3")
    assert event.started_at is not None
    assert event.ended_at is not None
    assert event.started_at.isoformat() == "2016-11-29T15:59:10+05:30"
    assert event.ended_at.isoformat() == "2016-11-29T15:59:27+05:30"
    assert [(leg.index, leg.status, leg.on_call_duration) for leg in event.legs] == [
        (0, "completed", 21),
        (1, "completed", 8),
    ]
    assert event.received_at == received
    assert event.raw["Call"]["Sid"] == event.call_sid

    wire = json.loads(event.model_dump_json(by_alias=True))
    assert wire["from"] == "0XXXXX85175"
    assert wire["ended_at"].endswith("+05:30")
    assert CallStatusEvent.model_validate(wire) == event


def test_v3_terminal_details_make_a_poll_event() -> None:
    details = v3_details()
    event = poll_event(watched(details.call_sid, "v3"), details, received_at=T0)
    assert event.api == "v3"
    assert event.status == "completed"
    assert event.conversation_duration == 59
    assert event.caller_id == "+911414941199"
    assert event.direction == "outbound"
    assert event.started_at is not None
    assert event.ended_at is not None
    assert event.started_at.isoformat() == "2022-11-03T22:54:57+05:30"
    assert event.ended_at.isoformat() == "2022-11-03T22:56:04+05:30"
    assert event.recording_url is not None
    assert event.recording_url.endswith(".mp3")
    assert event.legs == []


def test_v3_status_vocabulary_is_normalised() -> None:
    payload = sample("v3_call_details_terminal.json")
    payload["response"]["call_details"]["status"] = "to_leg_unanswered"
    details = CallDetails.from_ccm("v3", payload, IST)
    event = poll_event(watched(details.call_sid, "v3"), details, received_at=T0)
    assert event.status == "no-answer"
    assert event.exotel_status == "to_leg_unanswered"
    assert normalise_status("from_leg_cancelled") == "canceled"
    assert normalise_status("weird") == "unknown"


def test_an_active_call_makes_no_terminal_event() -> None:
    details = v3_details("v3_call_details_active.json")
    assert not details.is_terminal
    with pytest.raises(ValueError, match="finished"):
        poll_event(watched(details.call_sid, "v3"), details, received_at=T0)


def test_the_poll_event_id_is_stable_across_replicas_and_retries() -> None:
    details = v1_details()
    first = poll_event(watched(details.call_sid), details, received_at=T0)
    other_replica = poll_event(
        watched(details.call_sid), details, received_at=T0 + timedelta(seconds=7)
    )
    assert first.event_id == other_replica.event_id
    assert first.event_id == poll_event_id(details.call_sid, "completed")
    assert poll_event_id(details.call_sid, "busy") != first.event_id
    assert poll_event_id("other", "completed") != first.event_id


def test_cloudevents_headers_name_the_call_watch() -> None:
    details = v1_details()
    event = poll_event(watched(details.call_sid), details, received_at=T0)
    headers = fact_headers(event)
    assert headers["ce_source"] == CE_SOURCE == "voicebus/executor-call-watch"
    assert headers["ce_type"] == "voicebus.call.status.terminal"
    assert headers["ce_id"] == event.event_id
    assert headers["ce_subject"] == event.call_sid
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/json"


# ------------------------------------------------------------------ settings


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_TOKEN", "x" * 20)
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", "s" * 40)
    settings = ExecutorSettings()
    assert settings.call_watch_enabled is True
    assert settings.call_watch_group_id == "voicebus-call-watch"
    assert settings.call_watch_after_seconds == 900
    assert settings.call_watch_sweep_seconds == 5
    assert settings.call_watch_horizon_hours == 24
    monkeypatch.setenv("EXECUTOR_CALL_WATCH_ENABLED", "false")
    monkeypatch.setenv("EXECUTOR_CALL_WATCH_AFTER_SECONDS", "2")
    settings = ExecutorSettings()
    assert settings.call_watch_enabled is False
    assert settings.call_watch_after_seconds == 2


# ------------------------------------------------------------------ the runner, faked I/O


def runner(exotel: FakeExotel, after: float = 10) -> tuple[CallWatchRunner, Published, Clock]:
    published, clock = Published(), Clock()
    run = CallWatchRunner(
        KafkaSettings(),
        group_id="g",
        watch=watch(after=after),
        accounts={"default": WatchAccount(gateway=exotel, default_api="v3")},
        publish=published,
        metrics=FakeMetrics(),
        sweep_seconds=1,
        clock=clock,
    )
    return run, published, clock


async def test_the_runner_polls_only_calls_missing_their_terminal_and_publishes_once() -> None:
    details = v1_details()
    lost = details.call_sid
    exotel = FakeExotel().answer("call_details", details, sid=lost)
    run, published, clock = runner(exotel)
    run.apply(record(CALL_CONNECT_RESULT, accepted_result(lost), T0), T0)
    run.apply(record(CALL_CONNECT_RESULT, accepted_result("CAok"), T0), T0)
    run.apply(
        record(CALL_STATUS, {"call_sid": "CAok", "event_type": "terminal", "leg_sid": None}, T0),
        T0,
    )
    # answered events and monitor-leg terminals do not clear a call
    run.apply(record(CALL_STATUS, {"call_sid": lost, "event_type": "answered"}, T0), T0)
    run.apply(
        record(CALL_STATUS, {"call_sid": lost, "event_type": "terminal", "leg_sid": "L1"}, T0),
        T0,
    )
    # rejected results and other command types are not calls to watch
    run.apply(record(CALL_CONNECT_RESULT, accepted_result("CAx", outcome="rejected"), T0), T0)
    assert len(run.watch) == 1

    clock.now = T0 + timedelta(seconds=9)
    assert await run.sweep() == 0
    clock.now = T0 + timedelta(seconds=10)
    assert await run.sweep() == 1
    assert exotel.sent("call_details") == [(lost, "v1")]
    ((value, topic, key, headers),) = published.records
    assert topic == CALL_STATUS
    assert key == lost.encode()
    event = CallStatusEvent.model_validate_json(value)
    assert (event.source, event.event_type, event.status) == ("poll", "terminal", "completed")
    assert event.command_id == f"cmd-{lost}"
    assert headers["ce_id"] == event.event_id
    assert len(run.watch) == 0
    # reading our own event back changes nothing
    run.apply(record(CALL_STATUS, json.loads(value), clock.now), clock.now)
    clock.now += timedelta(hours=1)
    assert await run.sweep() == 0


async def test_the_runner_backs_off_while_active_and_after_errors() -> None:
    active = v3_details("v3_call_details_active.json")
    done = v3_details()
    sid = active.call_sid
    exotel = FakeExotel().answer("call_details", ExotelUnavailable("boom"), active, done, sid=sid)
    run, published, clock = runner(exotel, after=10)
    run.apply(record(CALL_CONNECT_RESULT, accepted_result(sid, api=None), T0), T0)

    clock.now = T0 + timedelta(seconds=10)
    await run.sweep()  # error: retried after min(30, after) = 10 s
    assert exotel.sent("call_details") == [(sid, "v3")], (
        "no api on the result: the account's default"
    )
    clock.now += timedelta(seconds=9)
    await run.sweep()
    assert len(exotel.sent("call_details")) == 1
    clock.now += timedelta(seconds=1)
    await run.sweep()  # active: again after 10 s
    assert len(exotel.sent("call_details")) == 2
    assert published.records == []
    clock.now += timedelta(seconds=10)
    await run.sweep()  # terminal
    assert len(exotel.sent("call_details")) == 3
    assert len(published.records) == 1
    metrics = run._metrics
    assert isinstance(metrics, FakeMetrics)
    assert metrics.polls == ["error", "active", "terminal"]
    assert metrics.recoveries == 1


async def test_a_failed_publish_is_retried_by_a_later_poll() -> None:
    details = v1_details()
    sid = details.call_sid
    exotel = FakeExotel().answer("call_details", details, sid=sid)
    run, published, clock = runner(exotel)
    attempts = 0

    async def flaky(value: bytes, topic: str, key: bytes, headers: dict[str, str]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("kafka down")
        await published(value, topic, key, headers)

    run._publish = flaky
    run.apply(record(CALL_CONNECT_RESULT, accepted_result(sid), T0), T0)
    clock.now = T0 + timedelta(seconds=10)
    await run.sweep()
    assert published.records == []
    assert sid in run.watch
    clock.now += timedelta(seconds=10)
    await run.sweep()
    assert len(published.records) == 1
    assert sid not in run.watch


async def test_old_records_and_unreadable_ones_are_ignored() -> None:
    exotel = FakeExotel()
    run, _, _ = runner(exotel)
    now = T0 + timedelta(days=2)
    run.apply(record(CALL_CONNECT_RESULT, accepted_result("old"), T0), now)
    bad = record(CALL_CONNECT_RESULT, accepted_result("x"), now)
    bad.value = b"\xff not json"
    run.apply(bad, now)
    run.apply(record(CALL_CONNECT_RESULT, accepted_result("y", account="nope"), now), now)
    assert len(run.watch) == 0


# ------------------------------------------------------------------ calls first seen by Passthru


def flow_event(call_sid: str, **extra: Any) -> dict[str, Any]:
    return {
        "call_sid": call_sid,
        "event_type": "flow",
        "api": "passthru",
        "account": "default",
        "leg_sid": None,
        **extra,
    }


async def test_a_call_first_seen_by_passthru_is_watched_and_polled_in_v1() -> None:
    details = v1_details()
    sid = details.call_sid
    exotel = FakeExotel().answer("call_details", details, sid=sid)
    run, published, clock = runner(exotel)
    run.apply(record(CALL_STATUS, flow_event(sid), T0), T0)
    run.apply(record(CALL_STATUS, flow_event(sid, call_type="completed"), T0), T0)
    assert len(run.watch) == 1, "repeated flow events watch once"
    watched_call = run.watch.get(sid)
    assert watched_call is not None
    assert (watched_call.account, watched_call.api, watched_call.command_id) == (
        "default",
        "v1",
        None,
    ), "v1 call details cover inbound calls, whatever the account's API (v3 here)"
    clock.now = T0 + timedelta(seconds=10)
    assert await run.sweep() == 1
    assert exotel.sent("call_details") == [(sid, "v1")]
    ((value, _, key, _),) = published.records
    event = CallStatusEvent.model_validate_json(value)
    assert (event.event_type, event.source, event.account, key) == (
        "terminal",
        "poll",
        "default",
        sid.encode(),
    )


async def test_a_flow_event_never_ends_the_watch_but_a_terminal_does() -> None:
    run, published, clock = runner(FakeExotel())
    run.apply(record(CALL_STATUS, flow_event("CAin", status="completed"), T0), T0)
    assert "CAin" in run.watch
    run.apply(record(CALL_STATUS, {"call_sid": "CAin", "event_type": "terminal"}, T0), T0)
    assert "CAin" not in run.watch
    clock.now = T0 + timedelta(hours=1)
    assert await run.sweep() == 0
    assert published.records == []


async def test_a_monitor_legs_terminal_never_ends_the_calls_watch() -> None:
    run, _, _ = runner(FakeExotel())
    run.apply(record(CALL_STATUS, flow_event("CAin"), T0), T0)
    for leg_event in (
        {"call_sid": "CAin", "event_type": "terminal", "leg_sid": "L1", "api": "lwb"},
        {"call_sid": "CAin", "event_type": "terminal", "leg_sid": None, "api": "lwb"},
    ):
        run.apply(record(CALL_STATUS, leg_event, T0), T0)
    assert "CAin" in run.watch


async def test_a_flow_event_of_an_unknown_account_is_not_watched() -> None:
    run, _, _ = runner(FakeExotel())
    run.apply(record(CALL_STATUS, flow_event("CAx", account="nobody"), T0), T0)
    run.apply(record(CALL_STATUS, flow_event("CAy", account=None), T0), T0)
    assert "CAx" not in run.watch
    assert "CAy" in run.watch, "no account named: the default one"


async def test_a_result_read_after_the_flow_event_gives_the_call_its_command() -> None:
    run, _, _ = runner(FakeExotel())
    run.apply(record(CALL_STATUS, flow_event("CAflow"), T0), T0)
    run.apply(record(CALL_CONNECT_RESULT, accepted_result("CAflow"), T0), T0)
    watched_call = run.watch.get("CAflow")
    assert watched_call is not None
    assert watched_call.command_id == "cmd-CAflow"


async def test_a_flow_call_the_accounts_details_do_not_know_is_dropped_not_polled_for_hours() -> (
    None
):
    exotel = FakeExotel().answer("call_details", not_found("Not Found"), sid="CAforeign")
    exotel.answer("call_details", not_found("Not Found"), not_found("Not Found"), sid="CAplaced")
    run, published, clock = runner(exotel)
    run.apply(record(CALL_STATUS, flow_event("CAforeign"), T0), T0)
    run.apply(record(CALL_CONNECT_RESULT, accepted_result("CAplaced"), T0), T0)
    clock.now = T0 + timedelta(seconds=10)
    assert await run.sweep() == 2
    assert "CAforeign" not in run.watch, "Exotel does not know it in this account"
    assert "CAplaced" in run.watch, "a call voicebus placed is polled again"
    assert published.records == []
