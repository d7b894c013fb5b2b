"""The state follower gathers what it reads back for a moment and applies it to the store
in one transaction (``FOLLOW_GATHER_SECONDS``), instead of one thread hand-off and
commit per fetch: the read-back of a command's intent otherwise went to the store just
as the command's request was sent."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from services.common.settings import KafkaSettings
from services.executor.state.records import INDEX_TOPIC, LEDGER_TOPIC, ledger_record
from services.executor.state.restore import StateReader
from services.executor.state.store import StateStore


class FakeFollower:
    """What ``StateReader`` asks of its follower consumer; ``arrive`` makes a record
    readable, as a fetch answer would."""

    def __init__(self) -> None:
        self.buffered: dict[TopicPartition, list[Any]] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.arrived = asyncio.Event()

    def assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.positions.setdefault(tp, 0)

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.positions[tp] = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def arrive(self, key: str, partition: int = 0) -> None:
        record = ledger_record(key=key, partition=partition, state="intent", at=1.0, value=b"{}")
        tp = TopicPartition(LEDGER_TOPIC, partition)
        waiting = self.buffered.setdefault(tp, [])
        offset = self.positions.get(tp, 0) + len(waiting)
        waiting.append(
            SimpleNamespace(
                key=record.key, value=record.value, headers=record.headers, offset=offset
            )
        )
        self.arrived.set()

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        del max_records
        if not self.buffered and timeout_ms > 0:
            self.arrived.clear()
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    await self.arrived.wait()
            except TimeoutError:
                return {}
        taken, self.buffered = self.buffered, {}
        for tp, records in taken.items():
            self.positions[tp] += len(records)
        return taken

    async def stop(self) -> None:
        pass


class CountingStore(StateStore):
    def __init__(self) -> None:
        super().__init__(None)
        self.applied: list[int] = []

    def apply(self, **rows: Any) -> None:
        self.applied.append(len(rows.get("entries", ())))
        super().apply(**rows)


async def barrier(topic: str, partition: int, value: bytes) -> None:
    del topic, partition, value


def reader(store: StateStore, follower: FakeFollower, gather: float) -> StateReader:
    state = StateReader(
        KafkaSettings(bootstrap_servers="localhost:9"),
        store,
        exact_end_offsets=True,
        write_barrier=barrier,
        timeout_seconds=5,
        follow_gather_seconds=gather,
    )
    state._follower = follower
    state._owned = {0}
    state._index_partitions = [0]
    return state


async def follow(gather: float) -> tuple[CountingStore, FakeFollower]:
    store, follower = CountingStore(), FakeFollower()
    state = reader(store, follower, gather)
    state._follow()
    try:
        for n in range(3):  # an intent, then its outcome, then the next command's
            follower.arrive(f"call.connect:c-{n}")
            await asyncio.sleep(0.01)
        await asyncio.sleep(gather + 0.1)
    finally:
        await state._stop_following()
    return store, follower


async def test_what_arrives_within_the_gathering_time_is_applied_in_one_transaction() -> None:
    store, follower = await follow(gather=0.2)
    assert store.applied == [3]
    assert all(store.entry(f"call.connect:c-{n}") is not None for n in range(3))
    assert store.position(LEDGER_TOPIC, 0) == 3
    assert store.position(INDEX_TOPIC, 0) is None  # nothing read there: no position moved
    assert follower.positions[TopicPartition(LEDGER_TOPIC, 0)] == 3


async def test_without_gathering_every_fetch_is_applied_at_once() -> None:
    store, _ = await follow(gather=0.0)
    assert store.applied == [1, 1, 1]
    assert store.position(LEDGER_TOPIC, 0) == 3
