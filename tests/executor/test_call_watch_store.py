"""The call watch's state in the local store, without a broker: only open items in
memory, compact rows per call written with their checkpoints, a partition's open items
brought back from its rows, rows of another cluster or of a recreated topic dropped, and
no call of a partition still restoring polled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from contracts.topics import CALL_CONNECT_RESULT, CALL_DETAILS, CALL_STATUS
from services.common.settings import KafkaSettings
from services.executor.call_watch import CallFacts, CallWatch, WatchPolicy
from services.executor.call_watch_kafka import WATCHED_TOPICS, CallWatchRunner, WatchAccount
from services.executor.state.store import StateStore, open_store
from services.executor.state.watch_store import WatchStore
from services.exotel.errors import ExotelUnavailable
from tests.support.exotel import FakeExotel
from tests.support.watch import T0, Clock, FakeMetrics, Published, accepted_result, record

POLICY = WatchPolicy(after_seconds=10, finalise_after_seconds=60)


def stored_watch(store: StateStore | None = None) -> tuple[CallWatch, WatchStore]:
    history = WatchStore(store or StateStore(None), WATCHED_TOPICS)
    return CallWatch(POLICY, history=history), history


def accept(w: CallWatch, sid: str, partition: int = 0, **extra: Any) -> bool:
    return w.accepted(
        sid,
        account="default",
        api="v3",
        command_id=f"cmd-{sid}",
        accepted_at=T0,
        partition=partition,
        now=T0,
        **extra,
    )


def end(w: CallWatch, sid: str, partition: int = 0) -> None:
    w.finished(sid, T0 + timedelta(seconds=5), partition)
    w.terminal(
        sid,
        account="default",
        api="v3",
        command_id=f"cmd-{sid}",
        at=T0 + timedelta(seconds=5),
        partition=partition,
        now=T0,
    )


async def test_rows_reach_sqlite_with_their_checkpoints_and_not_before() -> None:
    w, history = stored_watch()
    accept(w, "CA1", partition=2)
    assert history.rows_in([2]) == 0, "changed rows wait for the batch's flush"
    assert history.get("CA1") is not None, "but are read back meanwhile"
    assert await history.flush([(CALL_CONNECT_RESULT, 2, 41)]) == 1
    assert history.rows_in([2]) == 1
    assert history.position(CALL_CONNECT_RESULT, 2) == 41


async def test_a_row_holds_what_restores_a_call_and_never_the_result() -> None:
    w, history = stored_watch()
    accept(w, "CA1")
    await history.flush()
    row = history.get("CA1")
    assert row == CallFacts(
        "CA1",
        0,
        accepted_at=T0.timestamp(),
        account="default",
        api="v3",
        command_id="cmd-CA1",
        seen_in="result",
    )


async def test_a_partitions_open_items_come_back_from_its_rows() -> None:
    w, history = stored_watch()
    accept(w, "open", partition=0)
    accept(w, "ended", partition=0)
    end(w, "ended", partition=0)
    accept(w, "elsewhere", partition=1)
    accept(w, "finalised", partition=0)
    end(w, "finalised", partition=0)
    w.finalised("finalised", T0 + timedelta(seconds=70), 0)
    await history.flush()

    again = CallWatch(POLICY, history=history)
    rows = history.open_rows([0], since=T0.timestamp() - 3600)
    assert again.restore(rows, now=T0) == 1
    assert [c.call_sid for c in again.calls()] == ["open"]
    restored = again.get("open")
    original = w.get("open")
    assert restored == original
    assert [f.call_sid for f in again.due_finalisations(T0 + timedelta(hours=1))] == ["ended"]
    pending = again.pending_finalisation("ended")
    assert pending == w.pending_finalisation("ended")


async def test_rows_read_ahead_for_a_batch_are_the_stored_ones_until_changed() -> None:
    w, history = stored_watch()
    accept(w, "CA1")
    await history.flush()
    history.read_ahead(["CA1", "CAnew"])
    assert history.get("CAnew") is None
    stored = history.get("CA1")
    assert stored is not None
    assert stored.command_id == "cmd-CA1"
    end(w, "CA1")
    changed = history.get("CA1")
    assert changed is not None
    assert changed.finished_at is not None
    await history.flush()
    again = history.get("CA1")
    assert again is not None
    assert again.finished_at == changed.finished_at


async def test_a_terminal_read_before_the_acceptance_still_counts_after_a_flush() -> None:
    w, history = stored_watch()
    end(w, "CA1")
    await history.flush()
    assert accept(w, "CA1") is False
    assert len(w) == 0


async def test_open_items_older_than_the_horizon_do_not_come_back() -> None:
    w, history = stored_watch()
    accept(w, "CA1")
    await history.flush()
    later = T0 + timedelta(seconds=POLICY.horizon_seconds + 1)
    rows = history.open_rows([0], since=later.timestamp() - POLICY.horizon_seconds)
    assert CallWatch(POLICY, history=history).restore(rows, now=later) == 0
    w.prune(later)
    assert history.rows_in([0]) == 0


async def test_facts_are_kept_while_their_part_of_the_watch_is_off() -> None:
    """Switching missing-callback recovery on later applies to the stored past too."""
    history = WatchStore(StateStore(None), WATCHED_TOPICS)
    off = CallWatch(WatchPolicy(after_seconds=10, watch_missing=False), history=history)
    assert accept(off, "CA1") is False
    assert len(off) == 0
    await history.flush()
    on = CallWatch(POLICY, history=history)
    assert on.restore(history.open_rows([0], since=0), now=T0) == 1


async def test_rows_of_another_kafka_cluster_are_discarded(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.adopt("cluster-a")
    w, history = stored_watch(store)
    accept(w, "CA1")
    await history.flush([(CALL_STATUS, 0, 9)])
    assert WatchStore(store, WATCHED_TOPICS).rows_in([0]) == 1, "same cluster: kept"
    assert store.adopt("cluster-b") is True
    fresh = WatchStore(store, WATCHED_TOPICS)
    assert fresh.rows_in([0]) == 0
    assert fresh.position(CALL_STATUS, 0) is None
    store.close()


async def test_forgetting_a_partition_drops_its_rows_and_checkpoints_only() -> None:
    w, history = stored_watch()
    accept(w, "p0", partition=0)
    accept(w, "p1", partition=1)
    await history.flush([(t, p, 5) for t in WATCHED_TOPICS for p in (0, 1)])
    history.forget({1})
    assert history.rows_in([0]) == 1
    assert history.rows_in([1]) == 0
    assert [history.position(t, 1) for t in WATCHED_TOPICS] == [None, None, None]
    assert history.position(CALL_DETAILS, 0) == 5


async def test_a_failed_flush_keeps_its_rows_for_the_next() -> None:
    w, history = stored_watch()
    accept(w, "CA1")
    writes = 0
    real = history._write

    def failing(rows: list[Any], positions: list[Any]) -> None:
        nonlocal writes
        writes += 1
        if writes == 1:
            raise OSError("disk full")
        real(rows, positions)

    history._write = failing  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        await history.flush()
    assert history.rows_in([0]) == 0
    assert await history.flush() == 1
    assert history.rows_in([0]) == 1


async def test_calls_of_a_partition_still_restoring_are_not_polled() -> None:
    history = WatchStore(StateStore(None), WATCHED_TOPICS)
    exotel = FakeExotel().answer("call_details", ExotelUnavailable("later"), sid="CA0")
    clock = Clock()
    run = CallWatchRunner(
        KafkaSettings(),
        group_id="g",
        watch=CallWatch(POLICY, history=history),
        accounts={"default": WatchAccount(gateway=exotel, default_api="v3")},
        publish=Published(),
        metrics=FakeMetrics(),
        sweep_seconds=1,
        clock=clock,
        store=history,
    )
    run.apply(record(CALL_CONNECT_RESULT, accepted_result("CA0"), T0, partition=0), T0)
    run.apply(record(CALL_CONNECT_RESULT, accepted_result("CA1"), T0, partition=1), T0)
    run._replaying.add(TopicPartition(CALL_STATUS, 1))
    clock.now = T0 + timedelta(seconds=10)
    await run.sweep()
    assert [sid for sid, _ in exotel.sent("call_details")] == ["CA0"]
    assert run.status()["call_watch"] == {
        "partitions": [],
        "restoring": [1],
        "watched": 2,
        "finalisations": 0,
        "restored_since_start": {"restores": 0, "records": 0, "seconds": 0.0},
        "stored_calls": 0,
    }
