"""Reading the executor's state back from Kafka into the local store.

On assignment, before a partition's commands run, its ledger partition is read from the
store's checkpoint to the end (a fresh store: from the beginning), and so is the whole
command index, which is small (unless the restore takes every ledger partition: then no
index row would be kept, and the index is not read: ``_skip_index``). "The end" is the
partition's end offset where Kafka reports it exactly (Apache Kafka; with
``read_committed``, the last stable offset, once the new owner's transactional producer
has fenced the old one), else a barrier record this replica writes and reads back
(Tansu). Afterwards a follower keeps reading the
owned ledger partitions and the index, so checkpoints stay close to the end and a
duplicate published under another key is recognised from the index.

Progress is logged every few seconds and shown on ``/readyz``; a restore that does not
finish within ``EXECUTOR_RESTORE_TIMEOUT_SECONDS`` raises :class:`RestoreTimeout` naming
the setting and how far it got.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import time
import uuid
from collections.abc import Awaitable, Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.common.kafka import client_options
from services.common.settings import KafkaSettings
from services.executor.state.records import (
    BARRIER_KEY,
    INDEX_TOPIC,
    LEDGER_TOPIC,
    entry_row,
    index_row,
)
from services.executor.state.store import EntryRow, IndexRow, StateStore

log = structlog.get_logger(__name__)

#: Writes one barrier record to (topic, partition) and waits for its ack.
WriteBarrier = Callable[[str, int, bytes], Awaitable[None]]
BATCH_RECORDS = 20_000
FETCH_PARTITION_BYTES = 4 * 1024 * 1024
FETCH_BYTES = 16 * 1024 * 1024
PROGRESS_EVERY_SECONDS = 5.0
#: How long the follower gathers what it read before applying it to the store, in one
#: SQLite transaction in a worker thread (as the ledger's write-behind does with its own
#: entries). Applied as soon as read, the read-back of a command's intent (acknowledged
#: and fetched back in the same moment) went to the store just as the command's request
#: was being sent, and its outcome's as the next command arrived: two to three thread
#: hand-offs and commits per command, each one inside some command's publish -> request
#: (bench/RESULTS.md "e2e tail"). The store is a cache of Kafka: what waits here is in
#: the ledger's memory (our commands) or simply read a moment later (another replica's
#: index rows), and positions are only written with the rows below them.
FOLLOW_GATHER_SECONDS = 0.05


class RestoreTimeout(Exception):
    """The state did not come back within ``EXECUTOR_RESTORE_TIMEOUT_SECONDS``."""


@dataclass
class RestoreProgress:
    """What ``/readyz`` and the logs show while partitions are restored."""

    active: bool = False
    read: int = 0
    remaining: int | None = None
    partitions: list[int] = field(default_factory=list)
    started: float = 0.0
    last: dict[str, object] = field(default_factory=dict)
    #: every restore of this process (the first holds most; later ones start near the end)
    restores: int = 0
    records_restored: int = 0
    seconds_restoring: float = 0.0

    def finished(self, stats: RestoreStats) -> None:
        self.restores += 1
        self.records_restored += stats.records
        self.seconds_restoring += stats.seconds

    def totals(self) -> dict[str, object]:
        return {
            "restores": self.restores,
            "records": self.records_restored,
            "seconds": round(self.seconds_restoring, 2),
        }

    def status(self) -> dict[str, object]:
        if not self.active:
            if not self.last:
                return {}
            return {"last_restore": self.last, "restored_since_start": self.totals()}
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return {
            "restored_since_start": self.totals(),
            "restoring": {
                "ledger_partitions": self.partitions,
                "records_read": self.read,
                "records_remaining": self.remaining,
                "records_per_second": round(self.read / elapsed),
                "seconds": round(elapsed, 1),
            },
        }


@dataclass(frozen=True)
class RestoreStats:
    records: int
    seconds: float
    ledger_partitions: list[int]

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float(self.records)


def store_rows(
    records: Sequence[Any], topic: str, partition: int, restoring: Container[int] = ()
) -> tuple[list[EntryRow], list[IndexRow]]:
    """The store rows of records read from ``topic``'s ``partition``.

    ``restoring``: the ledger partitions being restored alongside. Index rows of commands
    whose home is one of them are left out: their entries come with the ledger partition
    and a lookup finds the entry before it asks the index (``CommandLedger.find``), so
    those rows would only be written, never read (for one replica owning every
    partition: the whole index, a third of a restore's writes)."""
    if topic == LEDGER_TOPIC:
        entries = [entry_row(partition, r.key, r.value, r.headers, r.offset) for r in records]
        return [e for e in entries if e is not None], []
    index = [index_row(r.key, r.value, r.headers) for r in records]
    return [], [i for i in index if i is not None and i.partition not in restoring]


def _as_read(_tp: object, record: Any) -> Any:
    """``PartitionRecords._consumer_record`` for :class:`_RecordsAsRead`: the record."""
    return record


class _RecordsAsRead(collections.OrderedDict[Any, Any]):
    """The fetcher's buffer of fetched partitions, handing out records as read: see
    :func:`read_records_as_read`."""

    def __setitem__(self, tp: Any, result: Any) -> None:
        partition_records = getattr(result, "_partition_records", None)
        if partition_records is not None:
            partition_records._consumer_record = _as_read
        super().__setitem__(tp, result)


def read_records_as_read(consumer: AIOKafkaConsumer) -> bool:
    """Make a started consumer, before its first assignment, hand out the records of its
    fetches as aiokafka's record batches yield them (its C extension's records: offset,
    key, value, headers) instead of a ``ConsumerRecord`` built in Python for each: that
    object (eleven fields, a copy of the headers) was half of what decoding a ledger
    record cost in a restore (bench/RESULTS.md). Whether it took.

    Only the last step changes: which batches are read, what is skipped (control
    batches; with ``read_committed``, the batches of aborted transactions), the
    positions, errors and retries stay aiokafka's own (``PartitionRecords``). It reaches
    into the fetcher (aiokafka is pinned to 0.14); where that is not as expected, nothing
    changes and the records come as ``ConsumerRecord``s, which the readers here take as
    well (both have ``key``, ``value`` and ``headers``)."""
    fetcher = getattr(consumer, "_fetcher", None)
    buffered = getattr(fetcher, "_records", None)
    if type(buffered) is not collections.OrderedDict or buffered:
        log.warning("state.records_as_read_unavailable")
        return False
    fetcher._records = _RecordsAsRead()  # type: ignore[union-attr]
    return True


class PausedCollector:
    """The cyclic garbage collector paused while a restore decodes millions of records,
    and run over the young generations only, once a second.

    Each record read back is a few container objects (aiokafka's ``ConsumerRecord``, its
    headers, a row tuple) that live until their batch is stored. With the collector as
    configured, every 700 of them start a collection that walks them all again, and the
    full collections walk the whole heap: decoding ledger records through aiokafka took
    2.5 times as long with it on (bench/RESULTS.md). Reference counting frees the
    batches; whatever the Kafka client or the event loop leaves in reference cycles
    meanwhile is freed by ``tick``, so a long restore never holds garbage for more than a
    second: a young collection walks only what is alive of what came since the last one,
    so once a second costs next to nothing. The collector is back on (if it was) on
    exit."""

    def __init__(self, every_seconds: float = 1.0) -> None:
        self.every_seconds = every_seconds
        self._was_enabled = False
        self._last = 0.0

    def __enter__(self) -> PausedCollector:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._last = time.monotonic()
        return self

    def tick(self) -> None:
        if time.monotonic() - self._last >= self.every_seconds:
            gc.collect(1)
            self._last = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        if self._was_enabled:
            gc.enable()


class StoreWriter:
    """Applies batches to the store in a thread, one at a time and in order, while the
    next batch is fetched and decoded (SQLite leaves the GIL while it writes). Each batch
    goes in one transaction with the positions after it, so a checkpoint never covers
    rows that were not written."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._pending: asyncio.Future[None] | None = None

    async def write(
        self,
        entries: Sequence[EntryRow] = (),
        index: Sequence[IndexRow] = (),
        positions: Sequence[tuple[str, int, int]] = (),
    ) -> None:
        """Wait for the previous batch, then start writing this one."""
        await self.flush()
        self._pending = asyncio.ensure_future(
            asyncio.to_thread(self._store.apply, entries=entries, index=index, positions=positions)
        )

    async def flush(self) -> None:
        """Until the batch being written is in the store (its error raised here)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def settle(self) -> None:
        """After a failure or cancellation: let the batch in the thread finish (it cannot
        be stopped), so that nothing writes behind the next reader's back."""
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(pending)


class StateReader:
    """Restores and follows the ledger partitions this replica owns, and the index."""

    def __init__(
        self,
        settings: KafkaSettings,
        store: StateStore,
        *,
        exact_end_offsets: bool,
        write_barrier: WriteBarrier,
        timeout_seconds: float,
        progress: RestoreProgress | None = None,
        follow_gather_seconds: float = FOLLOW_GATHER_SECONDS,
    ) -> None:
        self._settings = settings
        self._gather = follow_gather_seconds
        self._store = store
        self._exact = exact_end_offsets
        self._write_barrier = write_barrier
        self.timeout_seconds = timeout_seconds
        self.progress = progress or RestoreProgress()
        self._owned: set[int] = set()
        self._index_partitions: list[int] = []
        self._ledger_partitions: frozenset[int] = frozenset()
        self._follower: AIOKafkaConsumer | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def _consumer(self, suffix: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            client_id=f"{self._settings.client_id}-state-{suffix}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if self._exact else "read_uncommitted",
            # Large enough that a fetch brings thousands of records of each partition,
            # small enough that the responses held meanwhile (one being read, the next
            # prefetched) stay a few dozen MiB: 64 MiB fetches left a cold restore of 1M
            # entries at 310-350 MB RSS in some runs.
            max_partition_fetch_bytes=FETCH_PARTITION_BYTES,
            fetch_max_bytes=FETCH_BYTES,
            request_timeout_ms=self._settings.request_timeout_ms,
            **client_options(self._settings),
        )

    async def start(
        self, index_partitions: Sequence[int], ledger_partitions: Sequence[int] = ()
    ) -> None:
        """``ledger_partitions``: every partition the ledger topic has (a restore of all
        of them need not read the index: :meth:`_skip_index`); unknown if empty."""
        self._index_partitions = sorted(index_partitions)
        self._ledger_partitions = frozenset(ledger_partitions)
        self._follower = self._consumer("follow")
        await self._follower.start()

    async def restore(self, ledger_partitions: Iterable[int]) -> RestoreStats:
        """Read ``ledger_partitions`` and the index up to their ends (see the module
        docstring); then follow them. Raises :class:`RestoreTimeout`."""
        partitions = sorted(set(ledger_partitions))
        async with self._lock:
            await self._stop_following()
            try:
                stats = await self._catch_up(partitions)
            finally:
                self._owned |= set(partitions)
                self._follow()
        return stats

    def release(self, ledger_partitions: Iterable[int]) -> None:
        """Partitions given away: no longer followed (their rows stay, for a return)."""
        self._owned -= set(ledger_partitions)

    async def _catch_up(self, partitions: list[int]) -> RestoreStats:
        tps = [TopicPartition(LEDGER_TOPIC, p) for p in partitions] + [
            TopicPartition(INDEX_TOPIC, p) for p in self._index_partitions
        ]
        started = time.monotonic()
        # In place: /readyz holds this object (a new one would never show there).
        progress = self.progress
        progress.active, progress.partitions, progress.started = True, partitions, started
        progress.read, progress.remaining = 0, None
        consumer = self._consumer("restore")
        writer = StoreWriter(self._store)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await consumer.start()
                read_records_as_read(consumer)
                deferred = await asyncio.to_thread(self._store.defer_partition_index)
                try:
                    with PausedCollector() as collector:
                        read = await self._read_to_end(consumer, tps, writer, collector)
                finally:
                    if deferred:
                        await writer.settle()
                        await asyncio.to_thread(self._store.build_partition_index)
        except TimeoutError as exc:
            raise RestoreTimeout(
                f"restoring ledger partitions {partitions} did not finish within "
                f"EXECUTOR_RESTORE_TIMEOUT_SECONDS={self.timeout_seconds:g}: "
                f"{self.progress.read} records read, {self.progress.remaining} left"
            ) from exc
        finally:
            await writer.settle()
            await consumer.stop()
            self.progress.active = False
        stats = RestoreStats(read, time.monotonic() - started, partitions)
        self.progress.finished(stats)
        self.progress.last = {
            "ledger_partitions": partitions,
            "records": stats.records,
            "seconds": round(stats.seconds, 2),
            "records_per_second": round(stats.rate),
        }
        log.info("state.restored", **self.progress.last, **self._store.counts())
        return stats

    async def _read_to_end(
        self,
        consumer: AIOKafkaConsumer,
        tps: list[TopicPartition],
        writer: StoreWriter,
        collector: PausedCollector,
    ) -> int:
        consumer.assign(tps)
        await self._seek_to_checkpoints(consumer, tps)
        restoring = frozenset(tp.partition for tp in tps if tp.topic == LEDGER_TOPIC)
        skipped = await self._skip_index(consumer, tps, restoring)
        read_tps = [tp for tp in tps if tp not in skipped]
        barrier: bytes | None = None
        ends: dict[TopicPartition, int] = {}
        if self._exact:
            ends = dict(await consumer.end_offsets(read_tps)) if read_tps else {}
            waiting = {tp for tp in read_tps if await consumer.position(tp) < ends[tp]}
        else:
            # Tansu: its end offsets can be short of the real end; read to our own barrier.
            barrier = uuid.uuid4().hex.encode()
            await asyncio.gather(
                *(self._write_barrier(tp.topic, tp.partition, barrier) for tp in read_tps)
            )
            waiting = set(read_tps)
        read = 0
        last_report = time.monotonic()
        while waiting:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH_RECORDS)
            entries: list[EntryRow] = []
            index: list[IndexRow] = []
            positions: list[tuple[str, int, int]] = []
            for tp, records in batches.items():
                found_entries, found_index = store_rows(records, tp.topic, tp.partition, restoring)
                entries += found_entries
                index += found_index
                read += len(records)
                if barrier is not None and any(
                    r.key == BARRIER_KEY and r.value == barrier for r in records
                ):
                    waiting.discard(tp)
                positions.append((tp.topic, tp.partition, await consumer.position(tp)))
            remaining = 0
            if self._exact:
                for tp in list(waiting):
                    left = ends[tp] - await consumer.position(tp)
                    if left <= 0:
                        waiting.discard(tp)
                    remaining += max(left, 0)
            if entries or index or positions:
                await writer.write(entries, index, positions)
            collector.tick()
            self.progress.read = read
            self.progress.remaining = remaining if self._exact else None
            if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                last_report = time.monotonic()
                log.info(
                    "state.restore.progress",
                    records=read,
                    remaining=self.progress.remaining,
                    waiting_partitions=len(waiting),
                    seconds=round(last_report - self.progress.started, 1),
                )
        final = [(tp.topic, tp.partition, await consumer.position(tp)) for tp in tps]
        await writer.write(positions=final)
        await writer.flush()
        return read

    async def _skip_index(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], restoring: frozenset[int]
    ) -> list[TopicPartition]:
        """The index partitions this restore need not read, moved to their ends (and
        paused): all of them when it restores every ledger partition, none otherwise.

        ``store_rows`` leaves out the index rows of commands whose ledger partition is
        being restored (their entries come with it, and a lookup finds an entry before it
        asks the index); a restore of every ledger partition would read the whole index
        to store none of it (for one replica owning everything: half of what it reads).
        Moving the positions to the ends is what reading them through would have left:
        the follower goes on from there and stores every row written after them. An index
        row naming a partition the ledger does not have is skipped with the rest (no
        ledger entry can be behind it; commands of such a partition could not be
        recorded)."""
        # Those named at start and those the consumer's metadata knows now (a ledger
        # topic given partitions since is not taken for restored whole).
        ledger = self._ledger_partitions | set(consumer.partitions_for_topic(LEDGER_TOPIC) or ())
        index = [tp for tp in tps if tp.topic == INDEX_TOPIC]
        if not index or not self._ledger_partitions or not restoring.issuperset(ledger):
            return []
        ends = await consumer.end_offsets(index)
        for tp in index:
            if await consumer.position(tp) < ends[tp]:
                consumer.seek(tp, ends[tp])
        consumer.pause(*index)
        return index

    async def _seek_to_checkpoints(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> None:
        beginning = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        stale: dict[str, list[int]] = {}
        for tp in tps:
            position = self._store.position(tp.topic, tp.partition)
            if position is not None and position > end[tp] and self._exact:
                # Beyond the end: the topic was recreated; what we hold is not its data.
                stale.setdefault(tp.topic, []).append(tp.partition)
                position = None
            if position is None or position < beginning[tp]:
                consumer.seek(tp, beginning[tp])
            else:
                consumer.seek(tp, position)
        for topic, partitions in stale.items():
            log.warning("state.checkpoint_beyond_end", topic=topic, partitions=partitions)
            await asyncio.to_thread(self._store.forget_positions, topic, partitions)

    # -- following ------------------------------------------------------------------
    def _follow(self) -> None:
        if self._follower is None:
            return
        self._follow_task = asyncio.create_task(self._follow_forever(), name="state-follow")

    async def _stop_following(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow_task
            self._follow_task = None

    async def _follow_forever(self) -> None:
        consumer = self._follower
        if consumer is None:
            return
        tps = [TopicPartition(LEDGER_TOPIC, p) for p in sorted(self._owned)] + [
            TopicPartition(INDEX_TOPIC, p) for p in self._index_partitions
        ]
        consumer.assign(tps)
        for tp in tps:
            position = self._store.position(tp.topic, tp.partition)
            if position is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, position)
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH_RECORDS)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                log.warning("state.follow_failed", error=repr(exc))
                await asyncio.sleep(1)
                continue
            if not batches:
                continue
            if self._gather > 0:
                await asyncio.sleep(self._gather)
                with contextlib.suppress(KafkaError):  # applied without it, read next time
                    more = await consumer.getmany(timeout_ms=0, max_records=BATCH_RECORDS)
                    for tp, records in more.items():
                        batches[tp] = [*batches.get(tp, ()), *records]
            entries: list[EntryRow] = []
            index: list[IndexRow] = []
            positions = []
            for tp, records in batches.items():
                e, i = store_rows(records, tp.topic, tp.partition)
                entries += e
                index += i
                positions.append((tp.topic, tp.partition, await consumer.position(tp)))
            await asyncio.to_thread(
                self._store.apply, entries=entries, index=index, positions=positions
            )

    async def stop(self) -> None:
        await self._stop_following()
        if self._follower is not None:
            await self._follower.stop()
