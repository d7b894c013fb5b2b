"""Finalisation: a few minutes after a call's first terminal fact the executor fetches its
details once and publishes them on call.details (source poll): which calls, when, at
most once (read back, rebuilt, revoked), with the fake Exotel and a fake publisher."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError

from contracts.details import CallDetails as CallDetailsFact
from contracts.topics import CALL_DETAILS, CALL_STATUS
from services.common.settings import KafkaSettings
from services.executor.call_watch import MAX_FINALISE_TRIES, CallWatch, WatchPolicy
from services.executor.call_watch_kafka import CE_SOURCE, CallWatchRunner, WatchAccount
from services.executor.settings import ExecutorSettings
from services.exotel._payload import load_payload
from services.exotel.errors import ExotelUnavailable
from services.exotel.models import CallDetails
from tests.exotel.conftest import sample
from tests.support.exotel import FakeExotel
from tests.support.watch import T0, Clock, FakeMetrics, Published, record

IST = ZoneInfo("Asia/Kolkata")
AFTER = 180.0


def finished_call() -> CallDetails:
    payload = load_payload(sample("v1_call_details_details_corrected.json"))
    return CallDetails.from_v1_response(payload, IST)


SID = finished_call().call_sid


def active_call() -> CallDetails:
    return CallDetails.from_ccm(
        "v3", load_payload(sample("v3_call_details_active.json")), IST
    ).model_copy(update={"call_sid": SID})


def watch(**policy: Any) -> CallWatch:
    return CallWatch(WatchPolicy(finalise_after_seconds=AFTER, **policy))


def terminal(w: CallWatch, sid: str = SID, at: Any = T0, partition: int = 0) -> bool:
    return w.terminal(
        sid,
        account="default",
        api="v1",
        command_id="cmd-1",
        at=at,
        partition=partition,
        now=at,
    )


def status(sid: str = SID, **fields: Any) -> dict[str, Any]:
    return {
        "call_sid": sid,
        "event_type": "terminal",
        "account": "default",
        "api": "v1",
        "command_id": "cmd-1",
        **fields,
    }


def runner(
    exotel: FakeExotel, *, clock: Clock | None = None
) -> tuple[CallWatchRunner, Published, Clock]:
    published, clock = Published(), clock or Clock()
    run = CallWatchRunner(
        KafkaSettings(),
        group_id="g",
        watch=watch(),
        accounts={"default": WatchAccount(gateway=exotel, default_api="v1")},
        publish=published,
        metrics=FakeMetrics(),
        sweep_seconds=1,
        clock=clock,
    )
    return run, published, clock


def published_details(published: Published) -> list[CallDetailsFact]:
    return [
        CallDetailsFact.model_validate_json(value)
        for value, topic, _, _ in published.records
        if topic == CALL_DETAILS
    ]


# ------------------------------------------------------------------ which calls, when


def test_a_finished_call_is_due_the_configured_time_after_its_terminal_fact() -> None:
    w = watch()
    assert terminal(w)
    assert w.due_finalisations(T0 + timedelta(seconds=AFTER - 1)) == []
    (due,) = w.due_finalisations(T0 + timedelta(seconds=AFTER))
    assert (due.call_sid, due.account, due.api, due.command_id) == (SID, "default", "v1", "cmd-1")


def test_only_the_first_terminal_fact_counts() -> None:
    w = watch()
    terminal(w, at=T0 + timedelta(seconds=60))
    assert not terminal(w, at=T0 + timedelta(seconds=120)), "a late callback after the poll"
    assert not terminal(w, at=T0), "an earlier one read later moves the time forward"
    pending = w.pending_finalisation(SID)
    assert pending is not None
    assert pending.due_at == T0 + timedelta(seconds=AFTER)


def test_a_call_already_finalised_is_never_scheduled_again() -> None:
    w = watch()
    w.finalised(SID, T0)  # its call.details read before its terminal fact
    assert not terminal(w)
    assert w.finalisations == 0


def test_finalisation_is_off_without_a_delay() -> None:
    w = CallWatch(WatchPolicy())
    assert not terminal(w)


def test_revoked_partitions_take_their_finalisations_along() -> None:
    w = watch()
    terminal(w, "CA0", partition=0)
    terminal(w, "CA1", partition=1)
    w.drop_partitions([1])
    assert [f.call_sid for f in w.due_finalisations(T0 + timedelta(hours=1))] == ["CA0"]


def test_a_call_with_a_leg_event_asks_for_every_participant() -> None:
    w = watch()
    w.leg_event("CA1", T0)
    terminal(w, "CA1")
    terminal(w, "CA2")
    w.leg_event("CA2", T0 + timedelta(seconds=1))
    due = {f.call_sid: f.all_legs for f in w.due_finalisations(T0 + timedelta(hours=1))}
    assert due == {"CA1": True, "CA2": True}


def test_outcomes_reschedule_until_published() -> None:
    w = watch()
    terminal(w)
    now = T0 + timedelta(seconds=AFTER)
    w.finalising(SID)
    assert w.due_finalisations(now) == [], "running already"
    w.finalise_outcome(SID, "error", now)
    assert w.due_finalisations(now + timedelta(seconds=29)) == []
    assert w.due_finalisations(now + timedelta(seconds=30))
    w.finalise_outcome(SID, "pending", now)
    assert w.due_finalisations(now + timedelta(seconds=AFTER - 1)) == []
    w.finalise_outcome(SID, "published", now)
    assert w.finalisations == 0
    assert not terminal(w, at=now)


def test_what_is_older_than_the_horizon_is_forgotten() -> None:
    w = watch(horizon_seconds=3600)
    terminal(w, "old")
    w.finalised("done", T0)
    w.prune(T0 + timedelta(hours=2))
    assert w.finalisations == 0
    assert terminal(w, "done", at=T0 + timedelta(hours=2)), "its record is past the horizon too"


# ------------------------------------------------------------------ the runner


async def test_a_terminal_callback_leads_to_one_call_details_fact_minutes_later() -> None:
    exotel = FakeExotel().answer("call_details", finished_call())
    run, published, clock = runner(exotel)
    run.apply(record(CALL_STATUS, status(), T0), T0)

    clock.now = T0 + timedelta(seconds=AFTER - 1)
    await run.sweep()
    assert exotel.requests == []
    clock.now = T0 + timedelta(seconds=AFTER)
    await run.sweep()

    assert exotel.sent("call_details") == [(SID, "v1")]
    (details,) = published_details(published)
    (_, topic, key, headers) = published.records[0]
    assert (topic, key) == (CALL_DETAILS, SID.encode())
    assert (details.source, details.command_id, details.lookup_id) == ("poll", "cmd-1", None)
    assert (details.price, details.finished) == ("1.500", True)
    assert headers["ce_source"] == CE_SOURCE
    assert headers["ce_type"] == "voicebus.call.details"
    assert headers["ce_id"] == details.details_id
    metrics = run._metrics
    assert isinstance(metrics, FakeMetrics)
    assert (metrics.finalise_outcomes, metrics.pending) == (["published"], 0)

    # our own fact read back, and the call's late callbacks: nothing more
    run.apply(record(CALL_DETAILS, json.loads(published.records[0][0]), clock.now), clock.now)
    run.apply(record(CALL_STATUS, status(), clock.now), clock.now)
    clock.now += timedelta(hours=1)
    await run.sweep()
    assert len(published.records) == 1


async def test_a_call_finalised_before_a_restart_is_not_fetched_again() -> None:
    exotel = FakeExotel().answer("call_details", finished_call())
    run, published, clock = runner(exotel)
    # the rebuild reads the call's details before (another partition's order) its terminal
    poll = {"call_sid": SID, "source": "poll", "details_id": "x"}
    run.apply(record(CALL_DETAILS, poll, T0 + timedelta(seconds=AFTER)), T0)
    run.apply(record(CALL_STATUS, status(), T0), T0)
    clock.now = T0 + timedelta(hours=1)
    await run.sweep()
    assert exotel.requests == []
    assert published.records == []


async def test_details_from_a_lookup_do_not_finalise_a_call() -> None:
    exotel = FakeExotel().answer("call_details", finished_call())
    run, published, clock = runner(exotel)
    run.apply(record(CALL_DETAILS, {"call_sid": SID, "source": "lookup"}, T0), T0)
    run.apply(record(CALL_STATUS, status(), T0), T0)
    clock.now = T0 + timedelta(seconds=AFTER)
    await run.sweep()
    assert len(published_details(published)) == 1


async def test_which_terminal_facts_lead_to_a_fetch() -> None:
    exotel = FakeExotel()
    run, _, _ = runner(exotel)
    run.apply(record(CALL_STATUS, status("answered", event_type="answered"), T0), T0)
    run.apply(record(CALL_STATUS, status("monitor", leg_sid="L1", api="lwb"), T0), T0)
    run.apply(record(CALL_STATUS, status("stranger", account="nope"), T0), T0)
    run.apply(record(CALL_STATUS, status("inbound", account=None, api="v2"), T0), T0)
    assert run.watch.finalisations == 1
    pending = run.watch.pending_finalisation("inbound")
    assert pending is not None
    assert (pending.account, pending.api) == ("default", "v2"), "no account: the default one"


async def test_a_call_with_a_monitor_leg_is_asked_for_every_participant() -> None:
    exotel = FakeExotel().answer("call_details", finished_call())
    run, published, clock = runner(exotel)
    run.apply(record(CALL_STATUS, status(leg_sid="L9", origin="monitor", api="lwb"), T0), T0)
    run.apply(record(CALL_STATUS, status(), T0), T0)
    clock.now = T0 + timedelta(seconds=AFTER)
    await run.sweep()
    assert exotel.operations() == ["call_details", "completed_call_legs"]
    (details,) = published_details(published)
    assert details.legs_source == "legs_api"


async def test_a_monitor_leg_event_without_a_leg_sid_still_asks_for_every_participant() -> None:
    run, _, _ = runner(FakeExotel())
    run.apply(record(CALL_STATUS, status(api="lwb", leg_sid=None), T0), T0)
    run.apply(record(CALL_STATUS, status(), T0), T0)
    pending = run.watch.pending_finalisation(SID)
    assert pending is not None
    assert pending.all_legs, "an LWB event is a monitor leg's, never the call's terminal"


async def test_an_inbound_call_polled_to_its_end_is_finalised_in_v1() -> None:
    exotel = FakeExotel().answer("call_details", finished_call())
    run, published, clock = runner(exotel)
    flow = {"call_sid": SID, "event_type": "flow", "api": "passthru", "account": "default"}
    run.apply(record(CALL_STATUS, flow, T0), T0)
    assert run.watch.finalisations == 0, "a flow event is never a call's end"
    clock.now = T0 + timedelta(seconds=900)
    assert await run.sweep() == 1
    ((value, topic, _, _),) = published.records
    assert topic == CALL_STATUS
    run.apply(record(CALL_STATUS, json.loads(value), clock.now), clock.now)  # read back
    pending = run.watch.pending_finalisation(SID)
    assert pending is not None
    assert (pending.api, pending.command_id) == ("v1", None)


async def test_without_the_missing_callback_watch_a_flow_event_watches_nothing() -> None:
    run = CallWatchRunner(
        KafkaSettings(),
        group_id="g",
        watch=watch(watch_missing=False),
        accounts={"default": WatchAccount(gateway=FakeExotel(), default_api="v1")},
        publish=Published(),
        metrics=FakeMetrics(),
        sweep_seconds=1,
    )
    flow = {"call_sid": "CAin", "event_type": "flow", "api": "passthru", "account": "default"}
    run.apply(record(CALL_STATUS, flow, T0), T0)
    assert "CAin" not in run.watch
    run.apply(record(CALL_STATUS, status("CAin"), T0), T0)
    assert run.watch.finalisations == 1, "its terminal is still finalised"


async def test_a_call_exotel_still_calls_active_is_fetched_again_then_published_as_it_is() -> None:
    exotel = FakeExotel().answer("call_details", active_call())
    run, published, clock = runner(exotel)
    run.apply(record(CALL_STATUS, status(api="v3"), T0), T0)
    for tries in range(1, MAX_FINALISE_TRIES + 1):
        clock.now = T0 + timedelta(seconds=AFTER * tries)
        await run.sweep()
        assert len(exotel.sent("call_details")) == 2 * tries, "v3's details and v1's"
    (details,) = published_details(published)
    assert details.finished is False
    metrics = run._metrics
    assert isinstance(metrics, FakeMetrics)
    assert metrics.finalise_outcomes == ["pending"] * (MAX_FINALISE_TRIES - 1) + ["published"]


async def test_an_exotel_error_is_retried_after_a_backoff() -> None:
    exotel = FakeExotel().answer("call_details", ExotelUnavailable("boom"), finished_call())
    run, published, clock = runner(exotel)
    run.apply(record(CALL_STATUS, status(), T0), T0)
    clock.now = T0 + timedelta(seconds=AFTER)
    await run.sweep()
    assert published.records == []
    clock.now += timedelta(seconds=30)
    await run.sweep()
    assert len(published_details(published)) == 1


async def test_a_replica_losing_the_partition_waits_for_the_publish_it_started() -> None:
    exotel = FakeExotel().answer("call_details", finished_call())
    run, _, clock = runner(exotel)
    release = asyncio.Event()
    landed: list[bytes] = []

    async def slow_publish(value: bytes, topic: str, key: bytes, headers: dict[str, str]) -> None:
        await release.wait()
        landed.append(value)

    run._publish = slow_publish
    run.apply(record(CALL_STATUS, status(), T0), T0)
    clock.now = T0 + timedelta(seconds=AFTER)
    sweep = asyncio.create_task(run.sweep())
    await asyncio.wait_for(_until(lambda: bool(run._publishing)), timeout=5)

    revoke = asyncio.create_task(run.revoked([TopicPartition(CALL_STATUS, 0)]))
    # the revoke forgets the partition's finalisations, then waits for the publish
    await asyncio.wait_for(_until(lambda: run.watch.finalisations == 0), timeout=5)
    assert not revoke.done(), "the rebalance waits for the finalisation being published"
    release.set()
    await asyncio.wait_for(revoke, timeout=5)
    assert len(landed) == 1, "acknowledged before the partition changed hands"
    await sweep


async def test_a_fetch_that_ends_after_the_partition_was_revoked_publishes_nothing() -> None:
    asked, answered = asyncio.Event(), asyncio.Event()

    class SlowExotel(FakeExotel):
        async def call_details(self, call_sid: str, api: Any = None) -> Any:
            asked.set()
            await answered.wait()
            return finished_call()

    run, published, clock = runner(SlowExotel())
    await run.assigned([])  # no consumer: nothing to seek
    run._owned = {0}
    run.apply(record(CALL_STATUS, status(), T0), T0)
    clock.now = T0 + timedelta(seconds=AFTER)
    sweep = asyncio.create_task(run.sweep())
    await asyncio.wait_for(asked.wait(), timeout=5)
    await run.revoked([TopicPartition(CALL_STATUS, 0)])
    answered.set()
    await asyncio.wait_for(sweep, timeout=5)
    assert published.records == []


async def test_no_finalisation_when_call_details_is_partitioned_unlike_call_status() -> None:
    exotel = FakeExotel().answer("call_details", finished_call())
    run, published, clock = runner(exotel)

    class Metadata:
        def partitions_for_topic(self, topic: str) -> set[int]:
            return set(range(6 if topic == CALL_DETAILS else 12))

    run._check_copartitioned(Metadata())
    run.apply(record(CALL_STATUS, status(), T0), T0)
    clock.now = T0 + timedelta(hours=1)
    await run.sweep()
    assert published.records == []


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_settings_default_to_three_minutes_and_can_switch_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLBACK_TOKEN", "x" * 20)
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", "s" * 40)
    settings = ExecutorSettings()
    assert (settings.call_details_enabled, settings.call_details_after_seconds) == (True, 180)
    assert (settings.number_cache_hours, settings.backfill_page_size) == (24, 100)
    monkeypatch.setenv("EXECUTOR_CALL_DETAILS_ENABLED", "false")
    monkeypatch.setenv("EXECUTOR_CALL_DETAILS_AFTER_SECONDS", "30")
    settings = ExecutorSettings()
    assert (settings.call_details_enabled, settings.call_details_after_seconds) == (False, 30)
    monkeypatch.setenv("EXECUTOR_BACKFILL_PAGE_SIZE", "101")
    with pytest.raises(ValidationError, match="backfill_page_size"):
        ExecutorSettings()
