"""The executor's state restored from a real broker: a replica restoring every ledger
partition holds every committed entry (an outcome by reference to its offset, read back
from the ledger as it was written) and none of an aborted transaction, and need not
read the command index (its positions move to the ends, the follower goes on from there);
a replica restoring some partitions holds only their entries, and the index rows of the
others' commands."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaProducer

from services.common.kafka import ensure_topics, topic_partitions
from services.common.settings import KafkaSettings
from services.executor.state.kafka_lanes import fetch_entry_at
from services.executor.state.records import (
    BARRIER_KEY,
    INDEX_TOPIC,
    INDEX_TOPIC_CONFIG,
    LEDGER_TOPIC,
    LEDGER_TOPIC_CONFIG,
    Record,
    index_record,
    ledger_record,
)
from services.executor.state.restore import StateReader
from services.executor.state.store import StateStore
from tests.support.facts import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PER_PARTITION = 5


@dataclass
class History:
    """What this module wrote: each command's ledger partition and ledger bytes."""

    producer: AIOKafkaProducer
    ledger_partitions: list[int]
    prefix: str = field(default_factory=lambda: f"restore-{uuid.uuid4().hex[:8]}")
    home: dict[str, int] = field(default_factory=dict)
    values: dict[str, bytes] = field(default_factory=dict)
    aborted: set[str] = field(default_factory=set)

    def records(self, partition: int, n: int, tag: str) -> list[tuple[str, list[Record]]]:
        made: list[tuple[str, list[Record]]] = []
        for _ in range(n):
            key = f"call.connect:{self.prefix}-{tag}-{len(self.home) + len(made)}"
            value = f'{{"key": "{key}", "state": "done"}}'.encode()
            made.append(
                (
                    key,
                    [
                        ledger_record(
                            key=key, partition=partition, state="done", at=1.0, value=value
                        ),
                        index_record(key=key, partition=partition, state="done", at=1.0),
                    ],
                )
            )
        return made

    async def write(self, partition: int, n: int = 1) -> list[str]:
        written = []
        for key, records in self.records(partition, n, "c"):
            for r in records:
                await self.producer.send_and_wait(
                    r.topic, r.value, key=r.key, partition=r.partition, headers=r.headers
                )
            self.home[key] = partition
            self.values[key] = records[0].value
            written.append(key)
        return written

    def ours(self, store: StateStore) -> dict[str, tuple[int, str, bool]]:
        """Each stored entry's partition, state and whether it is kept by reference."""
        found: dict[str, tuple[int, str, bool]] = {}
        for key in [*self.home, *self.aborted]:
            entry = store.entry(key)
            if entry is not None:
                found[key] = (entry.partition, entry.state, entry.by_reference)
        return found

    async def read_back(self, settings: KafkaSettings, store: StateStore) -> dict[str, bytes]:
        """Every stored reference read back from the ledger, as the ledger does."""
        found: dict[str, bytes] = {}
        for key in self.home:
            entry = store.entry(key)
            if entry is not None:
                raw = await fetch_entry_at(
                    settings,
                    read_committed=settings.enable_idempotence,
                    partition=entry.partition,
                    offset=entry.offset,
                    key=key,
                    at=entry.at,
                )
                if raw is not None:
                    found[key] = raw
        return found

    def indexed(self, store: StateStore) -> dict[str, int]:
        found: dict[str, int] = {}
        for key in [*self.home, *self.aborted]:
            row = store.indexed(key)
            if row is not None:
                found[key] = row.partition
        return found


async def abort_some(settings: KafkaSettings, history: History) -> None:
    """Ledger and index records of a committed transaction, then of an aborted one (homed
    in the last ledger partition: a restore of the first stores their index rows)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        transactional_id=f"{history.prefix}-aborting",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        for outcome in ("commit", "abort"):
            partition = history.ledger_partitions[-1]
            made = history.records(partition, 3, outcome)
            async with producer.transaction() if outcome == "commit" else _aborted(producer):
                for _key, records in made:
                    for r in records:
                        await producer.send(
                            r.topic, r.value, key=r.key, partition=r.partition, headers=r.headers
                        )
            for key, records in made:
                if outcome == "commit":
                    history.home[key] = partition
                    history.values[key] = records[0].value
                else:
                    history.aborted.add(key)
    finally:
        await producer.stop()


class _aborted:  # noqa: N801 - reads as a context manager
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def __aenter__(self) -> None:
        await self.producer.begin_transaction()

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.abort_transaction()


@pytest.fixture(scope="module")
async def history(kafka_settings: KafkaSettings) -> AsyncIterator[History]:
    await ensure_topics(
        kafka_settings,
        (LEDGER_TOPIC, INDEX_TOPIC),
        configs={LEDGER_TOPIC: LEDGER_TOPIC_CONFIG, INDEX_TOPIC: INDEX_TOPIC_CONFIG},
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    written = History(producer, await topic_partitions(kafka_settings, LEDGER_TOPIC))
    for partition in written.ledger_partitions:
        await written.write(partition, PER_PARTITION)
    if kafka_settings.enable_idempotence:
        await abort_some(kafka_settings, written)
    yield written
    await producer.stop()


async def reader_of(settings: KafkaSettings, store: StateStore, history: History) -> StateReader:
    async def barrier(topic: str, partition: int, value: bytes) -> None:
        await history.producer.send_and_wait(topic, value, key=BARRIER_KEY, partition=partition)

    reader = StateReader(
        settings,
        store,
        exact_end_offsets=settings.enable_idempotence,
        write_barrier=barrier,
        timeout_seconds=60,
    )
    await reader.start(await topic_partitions(settings, INDEX_TOPIC), history.ledger_partitions)
    return reader


async def test_a_restore_of_every_partition_holds_every_entry_and_skips_the_index(
    kafka_settings: KafkaSettings, history: History
) -> None:
    store = StateStore(None)
    reader = await reader_of(kafka_settings, store, history)
    try:
        await reader.restore(history.ledger_partitions)
        expected = {k: (history.home[k], "done", True) for k in history.home}
        assert history.ours(store) == expected, "every committed entry, nothing aborted"
        assert await history.read_back(kafka_settings, store) == history.values
        assert history.indexed(store) == {}, "the index was not read"
        index_partitions = await topic_partitions(kafka_settings, INDEX_TOPIC)
        assert all(store.position(INDEX_TOPIC, p) is not None for p in index_partitions)

        # The follower goes on from the index's ends: what is written now is stored.
        (key,) = await history.write(history.ledger_partitions[-1])
        await wait_until(
            lambda: store.indexed(key) is not None and store.entry(key) is not None,
            timeout=30,
            what="the follower storing a command written after the restore",
        )
    finally:
        await reader.stop()
        store.close()


async def test_a_restore_of_some_partitions_holds_theirs_and_the_others_index_rows(
    kafka_settings: KafkaSettings, history: History
) -> None:
    store = StateStore(None)
    reader = await reader_of(kafka_settings, store, history)
    mine = history.ledger_partitions[0]
    try:
        await reader.restore([mine])
        assert history.ours(store) == {
            k: (p, "done", True) for k, p in history.home.items() if p == mine
        }
        assert history.indexed(store) == {k: p for k, p in history.home.items() if p != mine}
    finally:
        await reader.stop()
        store.close()
