"""How a restore stores what it reads: batch after batch in order, each with the positions
after it, written while the next one is read; the garbage collector off meanwhile."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

import pytest

from services.executor.state.records import INDEX_TOPIC, LEDGER_TOPIC, index_record, ledger_record
from services.executor.state.restore import (
    PausedCollector,
    StoreWriter,
    read_records_as_read,
    store_rows,
)
from services.executor.state.store import EntryRow, StateStore

LEDGER = LEDGER_TOPIC


def entry(number: int) -> EntryRow:
    return EntryRow(f"call.connect:c-{number}", 3, "done", float(number), b"{}")


async def test_batches_are_stored_in_order_each_with_the_positions_after_it() -> None:
    store = StateStore(None)
    writer = StoreWriter(store)
    for batch in range(3):
        rows = [entry(batch * 10 + n) for n in range(10)]
        await writer.write(rows, positions=[(LEDGER, 3, (batch + 1) * 10)])
    await writer.flush()
    assert store.entries_in([3]) == 30
    assert store.position(LEDGER, 3) == 30


class HeldStore(StateStore):
    """Writes once ``go_on`` is set (at once unless told to hold), or fails with ``error``."""

    def __init__(self, *, hold: bool = False, error: Exception | None = None) -> None:
        super().__init__(None)
        self.started = threading.Event()
        self.go_on = threading.Event()
        if not hold:
            self.go_on.set()
        self.error = error

    def apply(self, **rows: Any) -> None:
        self.started.set()
        self.go_on.wait(10)
        if self.error is not None:
            raise self.error
        super().apply(**rows)


async def test_a_batch_that_could_not_be_stored_fails_the_restore() -> None:
    writer = StoreWriter(HeldStore(error=OSError("disk full")))
    await writer.write([entry(1)], positions=[(LEDGER, 3, 1)])
    with pytest.raises(OSError, match="disk full"):
        await writer.flush()


async def test_a_cut_short_restore_lets_the_batch_being_written_finish() -> None:
    store = HeldStore(hold=True)
    writer = StoreWriter(store)
    await writer.write([entry(1)], positions=[(LEDGER, 3, 1)])
    await asyncio.to_thread(store.started.wait, 10)
    settling = asyncio.create_task(writer.settle())
    await asyncio.sleep(0)
    assert not settling.done()
    store.go_on.set()
    await asyncio.wait_for(settling, 10)
    assert store.position(LEDGER, 3) == 1


def test_the_collector_is_off_during_a_restore_and_back_on_after_it() -> None:
    assert gc.isenabled()
    with PausedCollector():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with PausedCollector():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_cycles_made_during_a_restore_are_collected_every_tick() -> None:
    with PausedCollector(every_seconds=0.0) as collector:
        gone = weakref.ref(Cycle())
        assert gone() is not None, "the collector is paused"
        collector.tick()
        assert gone() is None


def test_index_rows_of_commands_whose_ledger_partition_is_restored_alongside_are_left_out() -> None:
    records = [
        SimpleNamespace(key=r.key, value=r.value, headers=tuple(r.headers))
        for r in (
            index_record(key="call.connect:mine", partition=3, state="done", at=1.0),
            index_record(key="call.connect:theirs", partition=7, state="done", at=1.0),
        )
    ]
    entries, index = store_rows(records, INDEX_TOPIC, 0, restoring={3, 4})
    assert entries == []
    assert [row.key for row in index] == ["call.connect:theirs"]


def test_ledger_records_become_entries_of_their_partition() -> None:
    record = ledger_record(key="call.connect:c-1", partition=3, state="intent", at=1.0, value=b"{}")
    barrier = SimpleNamespace(key=b"__barrier__", value=b"b", headers=(), offset=9)
    rows = [
        SimpleNamespace(key=record.key, value=record.value, headers=tuple(record.headers), offset=8)
    ]
    entries, index = store_rows([*rows, barrier], LEDGER_TOPIC, 3, restoring={3})
    assert entries == [EntryRow("call.connect:c-1", 3, "intent", 1.0, b"{}", 8)]
    assert index == []


def test_an_outcome_read_back_is_kept_by_reference_to_its_offset() -> None:
    record = ledger_record(key="call.connect:c-1", partition=3, state="done", at=2.0, value=b"{}")
    read = SimpleNamespace(key=record.key, value=record.value, headers=record.headers, offset=41)
    entries, _ = store_rows([read], LEDGER_TOPIC, 3)
    assert entries == [EntryRow("call.connect:c-1", 3, "done", 2.0, b"", 41)]


def _batches(*records: Any, transactional: bool = False) -> bytes:
    """Records as one v2 record batch, as a fetch response carries it."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=int(transactional),
        producer_id=7 if transactional else -1,
        producer_epoch=0 if transactional else -1,
        base_sequence=0 if transactional else -1,
        batch_size=1024 * 1024,
    )
    for offset, r in enumerate(records):
        builder.append(offset, timestamp=None, key=r.key, value=r.value, headers=r.headers)
    return bytes(builder.build())


def test_fetched_records_are_handed_out_as_read_and_stored_alike() -> None:
    """The restore's consumer hands out aiokafka's own records (no ``ConsumerRecord`` per
    record); what is skipped and the rows stored are the same as from ``ConsumerRecord``s:
    an aborted transaction's batch read ``read_committed`` is not handed out."""
    from aiokafka.consumer.fetcher import READ_COMMITTED, PartitionRecords
    from aiokafka.record.memory_records import MemoryRecords
    from aiokafka.structs import TopicPartition

    tp = TopicPartition(LEDGER, 3)
    written = [
        ledger_record(key=f"call.connect:c-{n}", partition=3, state="done", at=2.0, value=b"{}")
        for n in range(3)
    ]

    check_crcs = False

    def partition_records(data: bytes, aborted: list[tuple[int, int]]) -> Any:
        return PartitionRecords(
            tp, MemoryRecords(data), aborted, 0, None, None, check_crcs, READ_COMMITTED
        )

    consumer: Any = SimpleNamespace(_fetcher=SimpleNamespace(_records=OrderedDict()))
    assert read_records_as_read(consumer) is True
    buffered = consumer._fetcher._records
    buffered[tp] = SimpleNamespace(_partition_records=partition_records(_batches(*written), []))
    as_read = list(buffered[tp]._partition_records)
    assert all(type(r).__name__ != "ConsumerRecord" for r in as_read)
    plain = list(partition_records(_batches(*written), []))
    assert all(type(r).__name__ == "ConsumerRecord" for r in plain)
    assert store_rows(as_read, LEDGER, 3) == store_rows(plain, LEDGER, 3)
    assert [e.key for e in store_rows(as_read, LEDGER, 3)[0]] == [
        "call.connect:c-0",
        "call.connect:c-1",
        "call.connect:c-2",
    ]

    aborted = _batches(*written, transactional=True)
    buffered[tp] = SimpleNamespace(_partition_records=partition_records(aborted, [(7, 0)]))
    assert list(buffered[tp]._partition_records) == []


def test_a_fetcher_not_as_expected_is_left_as_it_is() -> None:
    consumer: Any = SimpleNamespace(_fetcher=SimpleNamespace(_records={"already": "there"}))
    assert read_records_as_read(consumer) is False
    assert consumer._fetcher._records == {"already": "there"}
    assert read_records_as_read(SimpleNamespace()) is False
