"""The Kafka side of the executor's state: producers for the write lanes, barriers, and
reading one entry of another partition's ledger.

Transactional lanes get a producer each, with ``transactional.id`` ``<group>-p<partition>``:
starting it (``init_transactions``) fences the previous owner of the partition and aborts
its open transaction, so what a restore reads afterwards is final. Plain lanes share one
idempotent (where the broker allows it) producer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
)

from services.common.kafka import MAX_MESSAGE_BYTES, client_options
from services.common.settings import KafkaSettings
from services.executor.state.lanes import (
    LaneClosed,
    PlainLane,
    Positions,
    SplitLane,
    TransactionalLane,
    WriteLane,
)
from services.executor.state.records import BARRIER_KEY, LEDGER_TOPIC, Record

log = structlog.get_logger(__name__)

FENCED = (ProducerFenced, InvalidProducerEpoch, TransactionalIdAuthorizationFailed)
#: A lane's next transaction often starts while the coordinator still writes the markers
#: of the one before (a few milliseconds): its AddPartitionsToTxn or, with no records,
#: its AddOffsetsToTxn is answered CONCURRENT_TRANSACTIONS and tried again after this.
#: aiokafka waits 20 ms (its ``BACKOFF_OVERRIDE``) for the first and its retry backoff
#: (100 ms by default) for the second; nearly every transaction of a busy lane paid one
#: such wait, and an intent's request waits for its transaction (bench/RESULTS.md,
#: "latency hiding"). 5 ms for both: a few more small requests to the coordinator.
TRANSACTION_RETRY_BACKOFF_MS = 5


def _shorten_aiokafka_transaction_backoff() -> None:
    """aiokafka's 20 ms wait after CONCURRENT_TRANSACTIONS on AddPartitionsToTxn is a
    module constant (``aiokafka.producer.sender.BACKOFF_OVERRIDE``), not a setting; set
    it to :data:`TRANSACTION_RETRY_BACKOFF_MS` where it exists (aiokafka 0.14), else
    leave aiokafka as it is (only slower)."""
    from aiokafka.producer import sender

    if isinstance(getattr(sender, "BACKOFF_OVERRIDE", None), float):
        sender.BACKOFF_OVERRIDE = TRANSACTION_RETRY_BACKOFF_MS / 1000


FOREIGN_LOOKBACK_MS = 5_000
FOREIGN_TIMEOUT_SECONDS = 15.0


def lane_producer(settings: KafkaSettings, **options: Any) -> AIOKafkaProducer:
    """A lane's producer. No linger: a lane queues a write's records all at once and then
    waits for them (an intent's request, a transaction's commit), so lingering would only
    add its milliseconds to every command; under load, records queued while a produce
    request is in flight still leave together in the next one."""
    return AIOKafkaProducer(
        acks="all",
        request_timeout_ms=settings.request_timeout_ms,
        max_request_size=MAX_MESSAGE_BYTES,
        linger_ms=0,
        **client_options(settings),
        **options,
    )


def _sender(producer: AIOKafkaProducer) -> Any:
    async def send(record: Record) -> Any:
        return await producer.send(
            record.topic,
            record.value,
            key=record.key,
            partition=record.partition,
            headers=record.headers,
        )

    return send


class _TransactionalProducer:
    """aiokafka's producer as a lane's ``TransactionProducer``."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._send = _sender(producer)

    async def begin_transaction(self) -> None:
        await self._producer.begin_transaction()

    async def commit_transaction(self) -> None:
        await self._producer.commit_transaction()

    async def abort_transaction(self) -> None:
        await self._producer.abort_transaction()

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        await self._producer.send_offsets_to_transaction(offsets, group_id)

    async def send(self, record: Record) -> Any:
        return await self._send(record)

    async def stop(self) -> None:
        await self._producer.stop()


def _offset(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


class KafkaLanes:
    """The lanes of the partitions this replica owns (``Lanes`` for the ledger)."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        group_id: str,
        transactional: bool,
        positions_of: Any,
    ) -> None:
        """``positions_of(partition)``: a ``Positions`` for that partition's command topics."""
        self._settings = settings
        self._group_id = group_id
        self.transactional = transactional
        self._positions_of = positions_of
        self._lanes: dict[int, WriteLane] = {}
        self._plain: AIOKafkaProducer | None = None
        self._ready: dict[int, asyncio.Event] = {}

    async def start(self) -> None:
        """The shared producer: plain lanes' writes, and barriers."""
        self._plain = lane_producer(
            self._settings, enable_idempotence=self._settings.enable_idempotence
        )
        await self._plain.start()

    def lane(self, partition: int) -> WriteLane:
        lane = self._lanes.get(partition)
        if lane is None:
            raise LaneClosed(f"partition {partition} is not owned by this replica")
        return lane

    async def acquired(self, partition: int, within: float) -> WriteLane:
        """The lane of ``partition`` once its state is restored: aiokafka may deliver a
        newly assigned partition's records while the rebalance listener still restores."""
        event = self._ready.setdefault(partition, asyncio.Event())
        async with asyncio.timeout(within):
            await event.wait()
        return self.lane(partition)

    def mark_acquired(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._ready.setdefault(partition, asyncio.Event()).set()

    @property
    def owned(self) -> set[int]:
        return set(self._lanes)

    async def open(self, partitions: Iterable[int]) -> None:
        """Lanes for newly assigned partitions; transactional ones fence the old owner."""
        wanted = [p for p in sorted(set(partitions)) if p not in self._lanes]
        if self.transactional:
            await asyncio.gather(*(self._open_transactional(p) for p in wanted))
        else:
            send = _sender(self._shared())
            for partition in wanted:
                self._lanes[partition] = PlainLane(partition, send=send)

    async def _open_transactional(self, partition: int) -> None:
        """The partition's intents lane and outcomes lane, both producers started (which
        fences the previous owner's two) before the partition's state is restored."""
        _shorten_aiokafka_transaction_backoff()
        intents, outcomes = await asyncio.gather(
            self._transactional_lane(partition, f"{self._group_id}-p{partition}-i", intents=True),
            self._transactional_lane(partition, f"{self._group_id}-p{partition}", intents=False),
        )
        self._lanes[partition] = SplitLane(intents=intents, outcomes=outcomes)

    async def _transactional_lane(
        self, partition: int, transactional_id: str, *, intents: bool
    ) -> TransactionalLane:
        attempt_seconds = self._settings.request_timeout_ms / 1000 + 5

        async def open_producer() -> _TransactionalProducer:
            """A started producer of the partition's ``transactional.id``.

            Starting runs ``init_transactions``, which fences the previous owner; aiokafka
            waits without end for a transaction coordinator that died meanwhile, so each
            attempt is bounded and a stuck one is replaced (the caller bounds the whole)."""
            attempt = 0
            while True:
                attempt += 1
                producer = lane_producer(
                    self._settings,
                    enable_idempotence=True,
                    transactional_id=transactional_id,
                    retry_backoff_ms=TRANSACTION_RETRY_BACKOFF_MS,
                )
                try:
                    async with asyncio.timeout(attempt_seconds):
                        await producer.start()
                except (TimeoutError, KafkaError) as exc:
                    log.warning(
                        "lane.open_retry",
                        partition=partition,
                        attempt=attempt,
                        error=repr(exc) or type(exc).__name__,
                    )
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(attempt_seconds):
                            await producer.stop()
                    await asyncio.sleep(min(0.5 * attempt, 5.0))
                    continue
                return _TransactionalProducer(producer)

        # The intents lane commits no offsets (they go with the outcomes).
        positions: Positions = dict if intents else self._positions_of(partition)
        return TransactionalLane(
            partition,
            producer=await open_producer(),
            open_producer=open_producer,
            positions=positions,
            group_id=self._group_id,
            offset_type=_offset,
            is_fenced=lambda exc: isinstance(exc, FENCED),
            is_committed=partial(record_committed, self._settings),
            transaction_timeout=attempt_seconds,
        )

    async def flush(
        self,
        partitions: Iterable[int] | None = None,
        final: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        """A last transaction per lane; ``final`` positions (by command topic partition)
        go to the lanes of their partitions."""
        chosen = set(self._lanes) if partitions is None else set(partitions) & set(self._lanes)
        await asyncio.gather(
            *(
                self._lanes[p].flush(
                    {tp: o for tp, o in (final or {}).items() if tp[1] == p}
                    if final is not None
                    else None
                )
                for p in chosen
            )
        )

    async def close(self, partitions: Iterable[int] | None = None) -> None:
        chosen = list(self._lanes) if partitions is None else list(partitions)
        for partition in chosen:
            ready = self._ready.get(partition)
            if ready is not None:
                ready.clear()
            lane = self._lanes.pop(partition, None)
            if lane is not None:
                await lane.close()

    async def stop(self) -> None:
        await self.close()
        if self._plain is not None:
            await self._plain.stop()

    async def write_barrier(self, topic: str, partition: int, value: bytes) -> None:
        await self._shared().send_and_wait(topic, value, key=BARRIER_KEY, partition=partition)

    def _shared(self) -> AIOKafkaProducer:
        if self._plain is None:
            raise RuntimeError("KafkaLanes.start() was not called")
        return self._plain


async def record_committed(settings: KafkaSettings, ack: Any) -> bool:
    """Whether the record acknowledged as ``ack`` (topic, partition, offset) is there for
    a ``read_committed`` reader: seek to its offset and read until the position passes it
    (records of an aborted transaction are skipped, so the first record seen is a later
    one). Called once the transaction is over, so the last stable offset is past it."""
    consumer = _lookup_consumer(settings, "lane-in-doubt", read_committed=True)
    tp = TopicPartition(ack.topic, ack.partition)
    await consumer.start()
    try:
        first = await _first_record_from(consumer, tp, ack.offset, until=ack.offset + 1)
        return first is not None and bool(first.offset == ack.offset)
    finally:
        await consumer.stop()


async def _first_record_from(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, *, until: int
) -> Any | None:
    """The first record ``consumer`` reads of ``tp`` from ``offset`` on (records of
    aborted transactions and compacted ones are not there: it may be a later one), None
    once its position reaches ``until`` without one."""
    consumer.assign([tp])
    consumer.seek(tp, offset)
    while await consumer.position(tp) < until:
        records: Sequence[Any] = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
        if records:
            return records[0]
    return None


def _lookup_consumer(
    settings: KafkaSettings, name: str, *, read_committed: bool
) -> AIOKafkaConsumer:
    """A consumer without a group, for one lookup."""
    return AIOKafkaConsumer(
        client_id=f"{settings.client_id}-{name}",
        enable_auto_commit=False,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        request_timeout_ms=settings.request_timeout_ms,
        **client_options(settings),
    )


async def fetch_foreign_entry(
    settings: KafkaSettings, *, read_committed: bool, partition: int, key: str, at: float
) -> bytes | None:
    """The latest record of ``key`` on ledger partition ``partition``, searched from a
    little before ``at`` (when the index says it was written) to the end."""
    consumer = _lookup_consumer(settings, "ledger-lookup", read_committed=read_committed)
    tp = TopicPartition(LEDGER_TOPIC, partition)
    wanted = key.encode()
    found: bytes | None = None
    await consumer.start()
    try:
        async with asyncio.timeout(FOREIGN_TIMEOUT_SECONDS):
            consumer.assign([tp])
            start = await consumer.offsets_for_times({tp: int(at * 1000) - FOREIGN_LOOKBACK_MS})
            if start.get(tp) is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start[tp].offset)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                records: Sequence[Any] = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
                for record in records:
                    if record.key == wanted and record.value:
                        found = record.value
    except TimeoutError:
        log.warning("ledger.lookup_timeout", partition=partition, key=key)
    finally:
        await consumer.stop()
    return found


async def fetch_entry_at(
    settings: KafkaSettings,
    *,
    read_committed: bool,
    partition: int,
    offset: int,
    key: str,
    at: float,
) -> bytes | None:
    """The ledger record at ``offset`` of ``partition`` if it is ``key``'s (an outcome the
    local store keeps by reference); else, the record having been compacted away behind a
    newer one of the key, that latest record, searched from ``at``; None if neither is
    there (or the search ran out of time: :func:`fetch_foreign_entry`). Raises
    ``KafkaError`` or ``TimeoutError`` when Kafka does not answer the read at ``offset``."""
    consumer = _lookup_consumer(settings, "ledger-read-back", read_committed=read_committed)
    tp = TopicPartition(LEDGER_TOPIC, partition)
    wanted = key.encode()
    await consumer.start()
    try:
        async with asyncio.timeout(FOREIGN_TIMEOUT_SECONDS):
            end = (await consumer.end_offsets([tp]))[tp]
            first = await _first_record_from(consumer, tp, offset, until=end)
            if first is not None and first.offset == offset and first.key == wanted and first.value:
                return bytes(first.value)
    finally:
        await consumer.stop()
    return await fetch_foreign_entry(
        settings, read_committed=read_committed, partition=partition, key=key, at=at
    )
