"""Key-ordered concurrency with safe offset commits (no Kafka imports: plain asyncio).

Commands with the same key run one after another; different keys run concurrently, at
most ``max_in_flight`` commands in all (queued or running).

Order within a key: Kafka orders records within one partition only, and one call's
commands can come from two topics (``lwb.action`` and ``leg.hangup``, co-partitioned by
``call_sid``). So the next command of a key is the one published first (record
timestamp) among the first waiting command of each partition — offsets within a partition
are never reordered — and a command is held until every co-partitioned partition it names
(``after``) is known to be caught up to it, so that an earlier-published command still in
flight on the other topic can overtake it (the merge Kafka Streams does for co-partitioned
inputs). Caught up: the dispatcher already took a command of that partition published at
or after this one, or (from the consumer's :class:`~services.executor.ports.PartitionProgress`)
a fetch of it answered after this command was fetched reported an end offset the
dispatcher has already taken everything below. When that cannot be told, the command is
held for ``hold_seconds`` after it arrived (the fixed ordering window). ``submit``
waits for a free slot, so a full dispatcher stops the consumer from fetching more
(backpressure). For each partition the commit position is the lowest offset that has not
finished, so a crash or a rebalance can make Kafka redeliver commands but never skip one.

    consumer ──submit(tp, offset, key)──►  per-key queues  ──►  work()  ──► finish
                    ▲ blocks when full        key A: [o3, o7]            │
                    │                         key B: [o5]                ▼
                    └────────────── commit positions: min(unfinished) per partition
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from services.executor.ports import FetchMark, PartitionProgress

log = structlog.get_logger(__name__)

TopicPartition = tuple[str, int]
Work = Callable[[], Awaitable[None]]

#: How often a held command looks at the consumer's fetch progress again (a fetch that
#: brings no record wakes nobody; a command's arrival on any partition does at once).
PROGRESS_POLL_SECONDS = 0.005


class PartitionOffsets:
    """Offsets of one partition that started and have not finished."""

    def __init__(self) -> None:
        self._unfinished: set[int] = set()
        self._next: int | None = None
        #: the latest record timestamp taken (ms); -1 before any
        self.latest_timestamp_ms = -1

    def begin(self, offset: int, timestamp_ms: int = -1) -> None:
        self._unfinished.add(offset)
        if self._next is None or offset + 1 > self._next:
            self._next = offset + 1
        self.latest_timestamp_ms = max(self.latest_timestamp_ms, timestamp_ms)

    @property
    def taken_to(self) -> int | None:
        """One past the highest offset taken (None before the first)."""
        return self._next

    def finish(self, offset: int) -> None:
        self._unfinished.discard(offset)

    @property
    def in_flight(self) -> int:
        return len(self._unfinished)

    def commit_position(self) -> int | None:
        """The offset to commit: the lowest unfinished one, else one past the highest seen."""
        if self._unfinished:
            return min(self._unfinished)
        return self._next


_sequence = itertools.count()
#: the job the current task runs (set by ``_drain`` around the work)
_running: contextvars.ContextVar[_Job | None] = contextvars.ContextVar(
    "dispatch_running", default=None
)


@dataclass(frozen=True)
class _Job:
    tp: TopicPartition
    offset: int
    work: Work
    timestamp_ms: int
    ready_at: float
    #: co-partitioned partitions an earlier-published command of the key may come from
    after: tuple[TopicPartition, ...] = ()
    #: the consumer's fetch progress as the job arrived
    mark: FetchMark | None = None
    seq: int = field(default_factory=lambda: next(_sequence))


def _next_job(queue: list[_Job]) -> _Job:
    """The earliest-published job among the first waiting job of each partition."""
    heads: dict[TopicPartition, _Job] = {}
    for job in queue:
        heads.setdefault(job.tp, job)
    return min(heads.values(), key=lambda j: (j.timestamp_ms, j.seq))


class KeyOrderedDispatcher:
    """Runs work per key in order, across keys concurrently, within a bound."""

    def __init__(
        self,
        max_in_flight: int,
        *,
        on_change: Callable[[int], None] | None = None,
        progress: PartitionProgress | None = None,
        max_parked: int = 0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if max_parked < 0:
            raise ValueError("max_parked must not be negative")
        self._slots = asyncio.Semaphore(max_in_flight)
        #: slots taken back by parked jobs when none was free, repaid by the next releases
        self._overdraft = 0
        self._parked = 0
        self._max_parked = max_parked
        self._queues: dict[str, list[_Job]] = {}
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._revoked: set[TopicPartition] = set()
        self._dirty: set[TopicPartition] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._in_flight = 0
        self._on_change = on_change or (lambda _: None)
        self._progress = progress
        self._arrival: asyncio.Future[None] | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def closing(self) -> bool:
        return self._closing

    def owns(self, topic: str, partition: int) -> bool:
        """Whether work of this partition may still finish here (not revoked)."""
        return (topic, partition) not in self._revoked

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions this consumer now owns: start them with a clean slate."""
        for tp in partitions:
            self._revoked.discard(tp)
            self._partitions.setdefault(tp, PartitionOffsets())

    async def submit(
        self,
        tp: TopicPartition,
        offset: int,
        key: str,
        work: Work,
        *,
        timestamp_ms: int | None = None,
        hold_seconds: float = 0.0,
        after: Iterable[TopicPartition] = (),
    ) -> bool:
        """Queue ``work`` behind earlier work of ``key``; False if it was not taken.

        ``after``: partitions of other topics carrying commands of the same key; the
        command waits (at most ``hold_seconds``) until each is caught up to it.

        Not taken means the partition was revoked or the dispatcher is closing: the
        offset stays uncommitted and Kafka delivers the command again to its owner.
        """
        mark = self._progress.mark(tp) if self._progress is not None else None
        await self._slots.acquire()
        if self._closing or tp in self._revoked:
            self._slots.release()
            return False
        stamp = timestamp_ms if timestamp_ms is not None else 0
        self._partitions.setdefault(tp, PartitionOffsets()).begin(offset, stamp)
        self._arrived()
        self._in_flight += 1
        self._idle.clear()
        self._on_change(self._in_flight)
        loop = asyncio.get_running_loop()
        job = _Job(
            tp,
            offset,
            work,
            timestamp_ms=stamp,
            ready_at=loop.time() + hold_seconds,
            after=tuple(after) if hold_seconds > 0 else (),
            mark=mark,
        )
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)
            return True
        self._queues[key] = [job]
        task = asyncio.create_task(self._drain(key), name=f"dispatch:{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        loop = asyncio.get_running_loop()
        try:
            while queue:
                job = _next_job(queue)
                wait = job.ready_at - loop.time()
                if wait > 0 and not self._caught_up(job):
                    # Held: an earlier-published command of this key may still arrive from
                    # another partition; pick again once something arrived, the consumer
                    # may know more, or the hold is over.
                    if self._progress is not None and job.mark is not None:
                        wait = min(wait, PROGRESS_POLL_SECONDS)
                    await self._next_arrival(wait)
                    continue
                running = _running.set(job)
                try:
                    await job.work()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The work could not finish (e.g. its result was not acknowledged):
                    # leave the offset unfinished so it is never committed past, and stop
                    # this key so later commands of the same call do not overtake it.
                    log.exception("dispatch.work_failed", key=key, offset=job.offset)
                    return
                finally:
                    _running.reset(running)
                queue.remove(job)
                self._finish(job)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]
            for stranded in queue:
                self._release(stranded)

    def _caught_up(self, job: _Job) -> bool:
        """Whether no command published before ``job`` can still come from ``after``."""
        return bool(job.after) and all(self._partition_caught_up(tp, job) for tp in job.after)

    def _partition_caught_up(self, tp: TopicPartition, job: _Job) -> bool:
        partition = self._partitions.get(tp)
        if (
            partition is not None
            and job.timestamp_ms > 0
            and partition.latest_timestamp_ms >= job.timestamp_ms
        ):
            # A command of ``tp`` published at or after this one was taken: so was every
            # command before it in ``tp`` (offsets arrive in order).
            return True
        if self._progress is None or job.mark is None:
            return False
        end = self._progress.end_offset(tp, since=job.mark)
        if end is None:
            return False
        taken = partition.taken_to if partition is not None else None
        if taken is None:
            taken = self._progress.start_offset(tp)
        return taken is not None and taken >= end

    def _arrived(self) -> None:
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)
        self._arrival = None

    async def _next_arrival(self, seconds: float) -> None:
        """Until the next command is taken, at most ``seconds``."""
        if self._arrival is None:
            self._arrival = asyncio.get_running_loop().create_future()
        arrival = self._arrival
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.shield(arrival)

    def _finish(self, job: _Job) -> None:
        partition = self._partitions.get(job.tp)
        if partition is not None:
            partition.finish(job.offset)
            self._dirty.add(job.tp)
        self._release(job)

    @property
    def parked(self) -> int:
        return self._parked

    @contextlib.asynccontextmanager
    async def parked_while(self) -> AsyncIterator[bool]:
        """Around a wait that is not the command's own work (its account's rate slot):
        the running command gives its slot to another command meanwhile, so a throttled
        account's commands never keep another account's from running. Yields whether it
        parked: not outside a command, nor when ``max_parked`` commands already are (then
        it waits in its slot, and a full dispatcher stops the consumer as before).

        Back from parking the command takes a slot again, without waiting: if none is
        free it runs anyway, and the next slot released is kept back instead."""
        if _running.get() is None or self._parked >= self._max_parked:
            yield False
            return
        self._parked += 1
        self._release_slot()
        try:
            yield True
        finally:
            self._parked -= 1
            if self._slots.locked():
                self._overdraft += 1
            else:
                await self._slots.acquire()  # free: returns without suspending

    def _release_slot(self) -> None:
        if self._overdraft:
            self._overdraft -= 1
        else:
            self._slots.release()

    def _release(self, _job: _Job) -> None:
        self._in_flight -= 1
        self._release_slot()
        self._on_change(self._in_flight)
        if self._in_flight == 0:
            self._idle.set()

    def take_commits(self) -> dict[TopicPartition, int]:
        """Commit positions of partitions that moved since the last call."""
        positions = {}
        for tp in self._dirty:
            partition = self._partitions.get(tp)
            position = partition.commit_position() if partition else None
            if position is not None:
                positions[tp] = position
        self._dirty.clear()
        return positions

    def positions(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        wanted = self._partitions if partitions is None else partitions
        positions = {}
        for tp in wanted:
            partition = self._partitions.get(tp)
            position = partition.commit_position() if partition else None
            if position is not None:
                positions[tp] = position
        return positions

    def in_flight_on(self, partitions: Iterable[TopicPartition]) -> int:
        return sum(p.in_flight for tp in partitions if (p := self._partitions.get(tp)))

    async def revoke(
        self, partitions: Iterable[TopicPartition], grace_seconds: float
    ) -> dict[TopicPartition, int]:
        """Stop taking work for ``partitions``, let theirs finish within the grace period,
        and return the positions that are safe to commit for them."""
        revoked = set(partitions)
        self._revoked |= revoked
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self.in_flight_on(revoked) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        positions = self.positions(revoked)
        for tp in revoked:
            self._partitions.pop(tp, None)
            self._dirty.discard(tp)
        return positions

    def stop_taking(self) -> None:
        """Take no more work from now on (the start of a shutdown): a command waiting for
        a slot is left uncommitted for the next owner instead of starting in the grace
        period meant for what already runs."""
        self._closing = True

    async def close(self, grace_seconds: float) -> dict[TopicPartition, int]:
        """Take no more work, wait for what runs (within the grace period), cancel the
        rest (left uncommitted), and return the positions safe to commit."""
        self.stop_taking()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        positions = self.positions()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return positions
