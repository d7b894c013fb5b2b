"""The executor consumer's fetch progress (a ``PartitionProgress``), from aiokafka.

aiokafka keeps, per assigned partition, the high watermark and last stable offset of the
last fetch answer that carried the partition and when that answer was read
(``last_poll_timestamp``; every answer carries each partition it was asked for, records
or not). The dispatcher's cross-topic order asks it whether an ``lwb.action`` may run
before anything more can arrive on the call's ``leg.hangup`` partition (and the other way
round)::

    leg.hangup p  ─ hangup (published after barge was acknowledged) ─ fetched in answer A
    lwb.action p  ─ listen, barge ────────────────────────────────── end offset in A (or later)

When both partitions are led by one broker, the consumer fetches them in one request
(aiokafka holds a broker's next fetch while records it fetched wait to be taken, up to its
``prefetch_backoff``, so a consumer that takes them promptly asks for every partition of
that broker each time), and has one fetch in flight per broker: the answer that brought
the hangup, and any read after it, report an end offset for the other partition that
counts every record acknowledged there before the hangup was published (so before barge
was published too). Once the dispatcher has taken everything below that end offset, no
earlier command of the call can still come. (Answers are compared by aiokafka's
millisecond stamp: an earlier answer read in the same millisecond as the hangup's would
count too; that needs a fetch round trip, an append and a producer's acknowledgement
within one millisecond.) With different leaders the answers of two brokers are not
ordered, and the ordering window decides.

Where the consumer started reading a partition (its committed offset, else the log start)
is looked up after each assignment, so a partition that had no command yet also counts as
caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from services.executor.ports import FetchMark

log = structlog.get_logger(__name__)


class KafkaPartitionProgress:
    """Reads the progress of the consumer ``consumer()`` returns (None before it exists;
    the composition root makes this before the subscriber, which then plugs itself in)."""

    def __init__(self, consumer: Callable[[], Any] = lambda: None) -> None:
        self.consumer = consumer
        self._starts: dict[tuple[str, int], int] = {}
        self._generation = 0
        self._task: asyncio.Task[None] | None = None

    def _assigned(self, tp: tuple[str, int]) -> tuple[Any, TopicPartition] | None:
        consumer = self.consumer()
        if consumer is None:
            return None
        partition = TopicPartition(*tp)
        return (consumer, partition) if partition in consumer.assignment() else None

    def mark(self, tp: tuple[str, int]) -> FetchMark | None:
        found = self._assigned(tp)
        if found is None:
            return None
        consumer, partition = found
        stamp = consumer.last_poll_timestamp(partition)
        return FetchMark(tp, stamp) if stamp is not None else None

    def end_offset(self, tp: tuple[str, int], *, since: FetchMark) -> int | None:
        found = self._assigned(tp)
        if found is None:
            return None
        consumer, partition = found
        stamp = consumer.last_poll_timestamp(partition)
        if stamp is None or stamp < since.at_ms:
            return None
        if not _same_leader(consumer, partition, TopicPartition(*since.tp)):
            # Answers of two brokers are not ordered: one read after the mark may have
            # been asked for before the command was fetched. The ordering window decides.
            return None
        stable = consumer.last_stable_offset(partition)
        if stable is not None and stable >= 0:
            return int(stable)
        highwater = consumer.highwater(partition)
        return int(highwater) if highwater is not None else None

    def start_offset(self, tp: tuple[str, int]) -> int | None:
        return self._starts.get(tp)

    def assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """A new assignment: forget the old starting points, look up the new ones (in
        the background; until then those partitions are not known to be caught up)."""
        self._generation += 1
        self._starts.clear()
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(
            self._look_up(list(partitions), self._generation), name="partition-starts"
        )

    async def _look_up(self, partitions: list[tuple[str, int]], generation: int) -> None:
        consumer = self.consumer()
        if consumer is None or not partitions:
            return
        tps = [TopicPartition(*tp) for tp in partitions]
        try:
            committed = await asyncio.gather(*(consumer.committed(tp) for tp in tps))
            missing = [tp for tp, offset in zip(tps, committed, strict=True) if offset is None]
            beginnings = await consumer.beginning_offsets(missing) if missing else {}
        except (TimeoutError, KafkaError, AssertionError) as exc:
            # Unknown starting points: those partitions fall back to the ordering window.
            log.warning("kafka.partition_starts_unknown", error=repr(exc))
            return
        if generation != self._generation:
            return
        for tp, offset in zip(tps, committed, strict=True):
            start = offset if offset is not None else beginnings.get(tp)
            if start is not None:
                self._starts[(tp.topic, tp.partition)] = start

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _same_leader(consumer: Any, one: TopicPartition, other: TopicPartition) -> bool:
    """Whether both partitions are fetched from the same broker (aiokafka's cluster
    metadata; no public accessor)."""
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    if cluster is None:
        return False
    leader = cluster.leader_for_partition(one)
    return leader is not None and leader >= 0 and leader == cluster.leader_for_partition(other)
