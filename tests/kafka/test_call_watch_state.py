"""The call watch's state per partition on a real broker: a replica restarted with its
local store reads only the records after its checkpoints; without the store it rebuilds
the same state from Kafka; a replica assigned some of the partitions holds only their
calls. The watches run in this process (sweeps and Exotel faked: nothing is polled), so
the tests can look at their state and count what their restores read."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import CALL_CONNECT_RESULT, CALL_DETAILS, CALL_STATUS
from services.common.kafka import cluster_id, ensure_topics
from services.common.settings import KafkaSettings
from services.executor.call_watch import CallFacts, CallWatch, WatchPolicy
from services.executor.call_watch_kafka import WATCHED_TOPICS, CallWatchRunner, WatchAccount
from services.executor.state.store import StateStore, open_store
from services.executor.state.watch_store import WatchStore
from tests.support.exotel import FakeExotel
from tests.support.facts import SUITE_TOPIC_PARTITIONS, wait_until
from tests.support.watch import FakeMetrics, Published, accepted_result

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

#: Nothing falls due within a test: the state is looked at, never acted on.
POLICY = WatchPolicy(after_seconds=3600, finalise_after_seconds=3600)


@dataclass
class Calls:
    """What this module published, and so what a watch of it must hold."""

    producer: AIOKafkaProducer
    prefix: str = field(default_factory=lambda: f"CAst{uuid.uuid4().hex[:8]}")
    partition_of: dict[str, int] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    finalised: set[str] = field(default_factory=set)
    count: int = 0

    async def _send(self, topic: str, sid: str, value: dict[str, Any]) -> None:
        meta = await self.producer.send_and_wait(
            topic, json.dumps(value).encode(), key=sid.encode()
        )
        self.partition_of[sid] = meta.partition
        self.count += 1

    async def accept(self, n: int) -> list[str]:
        sids = [f"{self.prefix}-{len(self.accepted) + i}" for i in range(n)]
        for sid in sids:
            await self._send(CALL_CONNECT_RESULT, sid, accepted_result(sid))
            self.accepted.add(sid)
        return sids

    async def end(self, sids: list[str]) -> None:
        for sid in sids:
            event = {"call_sid": sid, "event_type": "terminal", "account": "default", "api": "v1"}
            await self._send(CALL_STATUS, sid, event)
            self.ended.add(sid)

    async def finalise(self, sids: list[str]) -> None:
        for sid in sids:
            await self._send(CALL_DETAILS, sid, {"call_sid": sid, "source": "poll"})
            self.finalised.add(sid)

    async def leg(self, sid: str) -> None:
        await self._send(
            CALL_STATUS, sid, {"call_sid": sid, "event_type": "terminal", "leg_sid": "L1"}
        )

    def open(self, partitions: set[int] | None = None) -> set[str]:
        return {
            s
            for s in self.accepted - self.ended
            if partitions is None or self.partition_of[s] in partitions
        }

    def to_finalise(self) -> set[str]:
        return self.ended - self.finalised


@dataclass
class Replica:
    runner: CallWatchRunner
    store: StateStore
    history: WatchStore

    @property
    def partitions(self) -> set[int]:
        status = self.runner.status()["call_watch"]
        assert isinstance(status, dict)
        return set(status["partitions"])

    def watched(self, calls: Calls) -> dict[str, Any]:
        return {
            c.call_sid: c for c in self.runner.watch.calls() if c.call_sid.startswith(calls.prefix)
        }

    def finalising(self, calls: Calls) -> set[str]:
        watch = self.runner.watch
        return {s for s in calls.ended if watch.pending_finalisation(s) is not None}

    def rows(self, calls: Calls) -> dict[str, CallFacts | None]:
        return {sid: self.history.get(sid) for sid in sorted(calls.partition_of)}

    @property
    def last_restore(self) -> dict[str, Any]:
        return dict(self.runner.progress.last)

    async def restored(self, restores: int = 1) -> None:
        progress = self.runner.progress
        await wait_until(
            lambda: progress.restores >= restores and not progress.active,
            timeout=60,
            what=f"restore #{restores} of the call watch",
        )

    async def stop(self) -> None:
        await self.runner.stop()
        self.store.close()


async def start_replica(settings: KafkaSettings, directory: Path, group: str) -> Replica:
    store = open_store(directory)
    store.adopt(await cluster_id(settings))
    history = WatchStore(store, WATCHED_TOPICS)
    runner = CallWatchRunner(
        settings,
        group_id=group,
        watch=CallWatch(POLICY, history=history),
        accounts={"default": WatchAccount(gateway=FakeExotel(), default_api="v1")},
        publish=Published(),
        metrics=FakeMetrics(),
        sweep_seconds=3600,
        store=history,
        exact_end_offsets=settings.enable_idempotence,
    )
    await runner.start()
    return Replica(runner, store, history)


@pytest.fixture(scope="module")
async def calls(kafka_settings: KafkaSettings) -> AsyncIterator[Calls]:
    """Eight accepted calls: three ended, one of those finalised."""
    await ensure_topics(kafka_settings, WATCHED_TOPICS)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    published = Calls(producer)
    sids = await published.accept(8)
    await published.end(sids[:3])
    await published.finalise(sids[:1])
    yield published
    await producer.stop()


def group() -> str:
    return f"call-watch-state-{uuid.uuid4().hex[:8]}"


async def test_a_restart_with_its_store_reads_only_the_records_after_its_checkpoints(
    kafka_settings: KafkaSettings, calls: Calls, tmp_path: Path
) -> None:
    first = await start_replica(kafka_settings, tmp_path / "replica", group())
    await first.restored()
    cold = first.last_restore["records"]
    assert cold >= calls.count, "a fresh store: everything of the horizon is read"
    assert set(first.watched(calls)) == calls.open()
    await first.stop()

    # While it is down: 4 calls accepted, 2 open calls end, a leg event.
    before = calls.count
    new = await calls.accept(4)
    await calls.end(sorted(calls.open() - set(new))[:2])
    await calls.leg(new[0])
    after_checkpoint = calls.count - before

    again = await start_replica(kafka_settings, tmp_path / "replica", group())
    await again.restored()
    assert again.last_restore["records"] == after_checkpoint == 7
    assert set(again.watched(calls)) == calls.open()
    assert again.finalising(calls) == calls.to_finalise()
    await again.stop()


async def test_without_its_store_a_replica_rebuilds_the_same_state_from_kafka(
    kafka_settings: KafkaSettings, calls: Calls, tmp_path: Path
) -> None:
    directory = tmp_path / "replica"
    replica = await start_replica(kafka_settings, directory, group())
    await replica.restored()
    # Read while following (not restoring): rows made by the live path.
    new = await calls.accept(2)
    await calls.end(new[:1])
    await calls.finalise(sorted(calls.to_finalise())[:1])
    await wait_until(
        lambda: (
            set(replica.watched(calls)) == calls.open()
            and replica.finalising(calls) == calls.to_finalise()
        ),
        timeout=30,
        what="the new records followed",
    )
    watched, finalising = replica.watched(calls), replica.finalising(calls)
    await replica.runner.stop()  # flushes what it holds
    rows = replica.rows(calls)
    replica.store.close()
    assert all(rows.values()), "every call of this module has its row"

    shutil.rmtree(directory)
    rebuilt = await start_replica(kafka_settings, directory, group())
    await rebuilt.restored()
    assert rebuilt.last_restore["records"] >= calls.count
    assert rebuilt.watched(calls) == watched
    assert rebuilt.finalising(calls) == finalising
    await rebuilt.runner.stop()
    assert rebuilt.rows(calls) == rows
    rebuilt.store.close()


async def test_a_replica_assigned_some_partitions_holds_only_their_calls(
    kafka_settings: KafkaSettings, calls: Calls, tmp_path: Path
) -> None:
    shared = group()
    first = await start_replica(kafka_settings, tmp_path / "first", shared)
    await first.restored()
    second = await start_replica(kafka_settings, tmp_path / "second", shared)
    try:
        await wait_until(
            lambda: (
                bool(first.partitions)
                and bool(second.partitions)
                and not first.runner.progress.active
                and not second.runner.progress.active
                and second.runner.progress.restores >= 1
            ),
            timeout=60,
            what="the partitions split between the two replicas",
        )
        assert first.partitions | second.partitions == set(range(SUITE_TOPIC_PARTITIONS))
        assert not first.partitions & second.partitions
        for replica in (first, second):
            assert set(replica.watched(calls)) == calls.open(replica.partitions)
            assert {c.partition for c in replica.runner.watch.calls()} <= replica.partitions
        # The second replica never had the others: its store holds only its partitions.
        others = set(range(SUITE_TOPIC_PARTITIONS)) - second.partitions
        assert second.history.rows_in(others) == 0
        assert second.history.rows_in(second.partitions) > 0
    finally:
        await second.stop()
        await first.stop()
