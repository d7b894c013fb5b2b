"""Write lanes: how one command partition's writes reach Kafka, one lane per partition.

Everything the executor writes because of a command of partition ``p`` goes through lane
``p``: the intent before a request with an effect, then the outcome (ledger entry,
command-index row, result fact or dead letter).

* :class:`TransactionalLane` (Apache Kafka): a transactional producer whose id names the
  partition (``<group>-p<p>``), so the replica that takes a partition over fences the one
  that had it. A worker commits Kafka transactions one after another, each holding
  everything queued when it began (group commit: one transaction per batch, not per
  command) plus the consumer offsets of the partition's command topics. The outcome, the
  result and the offset past the command are therefore committed together: a
  ``read_committed`` consumer sees exactly one result per command, and a command whose
  result is committed is never delivered again. An intent is its own wait: the request
  is sent only after the transaction holding the intent committed. A transaction of
  intents only leaves the offsets to the next one (they commit with the outcomes): two
  round trips to the group coordinator fewer before the request.
* :class:`SplitLane` (Apache Kafka, what the executor uses): two such lanes per partition,
  one for intents (``<group>-p<p>-i``), one for outcomes and offsets (``<group>-p<p>``).
  An intent then waits only for its own short transaction, never behind an outcome
  transaction with offsets in progress on the same producer (measured: the intent's wait
  was most of what a command spent in its in-flight slot besides the request). Both ids
  are fenced when a replica takes the partition over, before its state is restored. An
  intent no longer implies that the outcomes finished before it are committed: after a
  crash those commands are in doubt (they have their intents) and reconciled, as a
  command whose own outcome was lost always was.
* :class:`PlainLane` (a broker without transactions, Tansu): each write is acknowledged
  before the call returns, and offsets are committed afterwards by the executor's
  committer, as before (a result can then be published twice after a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import structlog

from services.executor.state.records import Record

log = structlog.get_logger(__name__)

#: ``(topic, partition) -> offset`` to commit with the next transaction.
Positions = Callable[[], Mapping[tuple[str, int], int]]
#: Sends one record with the lane's producer; the awaitable resolves on its ack.
Send = Callable[[Record], Awaitable[Any]]


class LaneClosed(Exception):
    """The lane no longer writes: its partition was revoked or taken over (fenced)."""


class WriteLane(Protocol):
    #: True where a command's outcome, result and offset commit together (transactions):
    #: a command found done in the restored state then already had its result published.
    atomic: bool

    async def write_now(self, records: list[Record]) -> None:
        """Return once ``records`` are durable (an intent: the request waits for it)."""

    async def finish(
        self, records: list[Record], on_durable: Callable[[], None] | None = None
    ) -> None:
        """Hand over a command's outcome records; ``on_durable`` runs once they are.

        Transactional: queued for the next transaction (with the partition's offsets),
        returning at once so the command counts as finished *before* that transaction
        takes its offsets. Plain: returns once every record is acknowledged."""

    async def flush(self, final: Mapping[tuple[str, int], int] | None = None) -> None:
        """Commit what is queued, with the offsets (revocation, shutdown); ``final``: the
        positions to commit when the dispatcher no longer tracks the partition."""

    async def close(self) -> None: ...


@dataclass
class _Batch:
    records: list[Record] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    #: nothing but intents, whose requests wait for this transaction (no offsets then)
    intents_only: bool = True


class TransactionProducer(Protocol):
    """What a lane needs of aiokafka's transactional producer."""

    async def begin_transaction(self) -> None: ...
    async def commit_transaction(self) -> None: ...
    async def abort_transaction(self) -> None: ...
    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None: ...
    async def send(self, record: Record) -> Awaitable[Any]: ...
    async def stop(self) -> None: ...


#: Starts a transactional producer for the lane's ``transactional.id`` (which fences any
#: earlier producer of that id, our own included, and aborts its open transaction).
OpenProducer = Callable[[], Awaitable[TransactionProducer]]
#: Whether the record of this acknowledgement (aiokafka's ``RecordMetadata``: topic,
#: partition, offset) is in Kafka for a ``read_committed`` reader: its transaction committed.
IsCommitted = Callable[[Any], Awaitable[bool]]


class TransactionalLane:
    """One partition's transactions (see the module docstring)."""

    atomic = True

    def __init__(
        self,
        partition: int,
        *,
        producer: TransactionProducer,
        open_producer: OpenProducer,
        positions: Positions,
        group_id: str,
        offset_type: Callable[[str, int], Any],
        is_fenced: Callable[[BaseException], bool],
        is_committed: IsCommitted,
        transaction_timeout: float = 30.0,
        retry_seconds: float = 0.5,
        max_queued: int = 2000,
    ) -> None:
        self.partition = partition
        self._producer: TransactionProducer | None = producer
        self._open_producer = open_producer
        self._transaction_timeout = transaction_timeout
        self._positions = positions
        self._group_id = group_id
        self._offset_type = offset_type
        self._is_fenced = is_fenced
        self._is_committed = is_committed
        #: set while ``commit_transaction`` runs: a record of the transaction, whose
        #: presence tells, after a failure, whether the transaction committed anyway
        self._committing: Any = None
        self._retry = retry_seconds
        self._queued = _Batch()
        self._space = asyncio.Semaphore(max_queued)
        self._wake = asyncio.Event()
        self._committed: dict[tuple[str, int], int] = {}
        self._final: dict[tuple[str, int], int] = {}
        self._closed: BaseException | None = None
        self._worker = asyncio.create_task(self._run(), name=f"lane-p{partition}")
        self.transactions = 0

    async def write_now(self, records: list[Record]) -> None:
        future = await self._enqueue(records, intent=True)
        await future

    async def finish(
        self, records: list[Record], on_durable: Callable[[], None] | None = None
    ) -> None:
        future = await self._enqueue(records)
        future.add_done_callback(partial(_settled, on_durable))

    async def _enqueue(
        self, records: list[Record], *, intent: bool = False
    ) -> asyncio.Future[None]:
        if self._closed is not None:
            raise LaneClosed(f"partition {self.partition}: {self._closed!r}")
        for _ in records:
            await self._space.acquire()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.records.extend(records)
        self._queued.waiters.append(future)
        self._queued.intents_only &= intent
        self._wake.set()
        return future

    async def flush(self, final: Mapping[tuple[str, int], int] | None = None) -> None:
        """One more transaction with whatever is queued and the latest offsets."""
        if self._closed is not None:
            return
        if final is not None:
            self._final = dict(final)
        future = await self._enqueue([])
        with contextlib.suppress(LaneClosed):
            await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Records and offsets are taken together, without a pause between them: a
            # command counts as finished only after its outcome was queued.
            batch, self._queued = self._queued, _Batch()
            current = {} if batch.intents_only else {**self._positions(), **self._final}
            offsets = {tp: o for tp, o in current.items() if self._committed.get(tp) != o}
            if not batch.records and not batch.waiters and not offsets:
                continue
            try:
                await self._commit(batch.records, offsets)
            except asyncio.CancelledError:
                _fail(batch.waiters, LaneClosed("the lane was closed"))
                raise
            except LaneClosed as exc:
                _fail(batch.waiters, exc)
                self._fail_queued(exc)
                return
            self._committed.update(offsets)
            for _ in batch.records:
                self._space.release()
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _commit(self, records: list[Record], offsets: dict[tuple[str, int], int]) -> None:
        """Commit ``records`` and ``offsets`` in one transaction, retrying a failed one with
        the same content until it commits or the partition is taken over.

        Every attempt is bounded (aiokafka waits for a lost transaction coordinator
        without end); after a failure the producer is replaced by a new one of the same
        ``transactional.id``, which aborts whatever the failed attempt left open, or
        completes its commit if the coordinator had already decided it. So a failure
        while ``commit_transaction`` ran leaves the attempt in doubt: trying the same
        records again could commit them twice (two results of one command for a
        ``read_committed`` consumer). Such an attempt is settled by evidence first:
        once the new producer is open, one of its records is looked up as a
        ``read_committed`` reader sees it; present means it committed, and it is not
        sent again."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(self._transaction_timeout):
                    await self._transaction(records, offsets)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._is_fenced(exc):
                    raise self._taken_over(exc) from exc
                in_doubt, self._committing = self._committing, None
                log.warning(
                    "lane.transaction_retry",
                    partition=self.partition,
                    attempt=attempt,
                    records=len(records),
                    in_doubt=in_doubt is not None,
                    error=repr(exc) or type(exc).__name__,
                )
                await self._drop_producer()
                if in_doubt is not None and await self._settle(in_doubt):
                    log.info("lane.in_doubt_committed", partition=self.partition)
                    self.transactions += 1
                    return
                await asyncio.sleep(min(self._retry * attempt, 5.0))
            else:
                self.transactions += 1
                return

    def _taken_over(self, exc: BaseException) -> LaneClosed:
        """Another replica took the partition over: the lane writes nothing more."""
        self._closed = exc
        log.warning("lane.fenced", partition=self.partition, error=repr(exc))
        return LaneClosed(f"partition {self.partition} was taken over")

    async def _settle(self, ack: Any) -> bool:
        """Whether the transaction holding ``ack``'s record committed. The lane's producer
        is opened again first (its ``init_transactions`` ends the failed transaction one
        way or the other); until the answer is known nothing is sent again."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(self._transaction_timeout):
                    if self._producer is None:
                        self._producer = await self._open_producer()
                    return await self._is_committed(ack)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._is_fenced(exc):
                    raise self._taken_over(exc) from exc
                log.warning(
                    "lane.in_doubt_retry",
                    partition=self.partition,
                    attempt=attempt,
                    error=repr(exc) or type(exc).__name__,
                )
                await self._drop_producer()
                await asyncio.sleep(min(self._retry * attempt, 5.0))

    async def _transaction(
        self, records: list[Record], offsets: dict[tuple[str, int], int]
    ) -> None:
        """One transaction: the records, the offsets, the commit.

        The offsets are added while the records are still being produced (aiokafka
        sends AddPartitionsToTxn first, then the produce requests and AddOffsetsToTxn /
        TxnOffsetCommit side by side), rather than after every acknowledgement: one round
        trip less per transaction. The commit still waits for every record's
        acknowledgement, because aiokafka does not fail a transaction whose batch failed
        (it only fails the batch's future): a failed record raises here, before
        ``commit_transaction``, and ``_commit`` retries the whole content with a new
        producer, whose ``init_transactions`` aborts this one. So nothing is committed
        without all of its records, and offsets never commit without the outcomes they
        follow."""
        if self._producer is None:
            self._producer = await self._open_producer()
        producer = self._producer
        await producer.begin_transaction()
        pending = [await producer.send(record) for record in records]
        try:
            if offsets:
                await producer.send_offsets_to_transaction(
                    {self._offset_type(t, p): o for (t, p), o in offsets.items()},
                    self._group_id,
                )
        finally:
            # Every ack is awaited (a failed one raises) before anything else is tried,
            # so no record's failure is left unobserved.
            acks = await asyncio.gather(*pending, return_exceptions=True)
        for ack in acks:
            if isinstance(ack, BaseException):
                raise ack
        # From here a failure leaves the transaction in doubt (see _commit). Offsets
        # alone need no evidence: committing them again is harmless.
        self._committing = acks[0] if acks else None
        await producer.commit_transaction()
        self._committing = None

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._transaction_timeout):
                    await producer.stop()

    def _fail_queued(self, exc: BaseException) -> None:
        batch, self._queued = self._queued, _Batch()
        _fail(batch.waiters, exc)

    async def close(self) -> None:
        self._closed = self._closed or LaneClosed("closed")
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._fail_queued(LaneClosed(f"partition {self.partition} closed"))
        await self._drop_producer()


class SplitLane:
    """A partition's intents through one transactional lane, its outcomes and offsets
    through another (see the module docstring)."""

    atomic = True

    def __init__(self, *, intents: WriteLane, outcomes: WriteLane) -> None:
        self._intents = intents
        self._outcomes = outcomes

    async def write_now(self, records: list[Record]) -> None:
        await self._intents.write_now(records)

    async def finish(
        self, records: list[Record], on_durable: Callable[[], None] | None = None
    ) -> None:
        await self._outcomes.finish(records, on_durable)

    async def flush(self, final: Mapping[tuple[str, int], int] | None = None) -> None:
        await self._outcomes.flush(final)

    async def close(self) -> None:
        await asyncio.gather(self._intents.close(), self._outcomes.close())


class PlainLane:
    """Acknowledged writes without transactions (see the module docstring)."""

    atomic = False

    def __init__(self, partition: int, *, send: Send) -> None:
        self.partition = partition
        self._send = send
        self._closed = False

    async def write_now(self, records: list[Record]) -> None:
        await self._write(records)

    async def finish(
        self, records: list[Record], on_durable: Callable[[], None] | None = None
    ) -> None:
        await self._write(records)
        if on_durable is not None:
            on_durable()

    async def _write(self, records: list[Record]) -> None:
        if self._closed:
            raise LaneClosed(f"partition {self.partition} closed")
        acks = [await self._send(record) for record in records]
        for ack in acks:
            await ack

    async def flush(self, final: Mapping[tuple[str, int], int] | None = None) -> None:
        """Nothing queued here: every write was acknowledged when it was made."""
        del final

    async def close(self) -> None:
        self._closed = True


def _settled(on_durable: Callable[[], None] | None, future: asyncio.Future[None]) -> None:
    """An outcome's transaction ended: committed (``on_durable``), or the lane closed (the
    failure is the lane's to report; the command's offset was not committed either)."""
    if future.cancelled() or future.exception() is not None:
        return
    if on_durable is not None:
        on_durable()


def _fail(waiters: list[asyncio.Future[None]], exc: BaseException) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(exc)
