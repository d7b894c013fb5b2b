"""Kafka side of the metrics service: the subscriber, its commits and its rebalance listener.

Each message is counted, then its position (offset + 1) is remembered; the
:class:`PositionCommitter` commits remembered positions every
``METRICS_COMMIT_INTERVAL_SECONDS``, on revocation and on shutdown. So a restart resumes
after what was counted and committed: only messages counted in the last commit interval
before a crash are read (and counted) again. Messages handed over after a partition was
revoked, or once shutdown began, are neither counted nor committed: whoever reads them
next counts them once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts.topics import DLQ_TOPICS, FACT_TOPICS
from services.metrics.recorder import LABEL_TOPICS, FactRecorder
from services.metrics.settings import MetricsSettings

log = structlog.get_logger(__name__)

#: Every fact topic, every DLQ, and the two command topics whose results lack a label.
METRICS_TOPICS: tuple[str, ...] = (*FACT_TOPICS, *DLQ_TOPICS, *LABEL_TOPICS)


@dataclass
class PositionCommitter:
    """Remembers counted positions and commits them, never past what was counted."""

    interval_seconds: float
    on_tick: Callable[[], None] | None = None
    consumer: AIOKafkaConsumer | None = None
    stopping: bool = False
    _positions: dict[TopicPartition, int] = field(default_factory=dict, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def counted(self, topic: str, partition: int, offset: int) -> None:
        self._positions[TopicPartition(topic, partition)] = offset + 1

    def owns(self, topic: str, partition: int) -> bool:
        """Whether the partition is still assigned (false after revocation, before re-use)."""
        if self.consumer is None:
            return True
        return TopicPartition(topic, partition) in self.consumer.assignment()

    async def commit(self, only: set[TopicPartition] | None = None) -> bool:
        if self.consumer is None:
            return True
        assigned = self.consumer.assignment()
        offsets = {
            tp: position
            for tp, position in self._positions.items()
            if tp in assigned and (only is None or tp in only)
        }
        if not offsets:
            return True
        try:
            await self.consumer.commit(offsets)
        except (KafkaError, AssertionError) as exc:
            # Not committed: these facts may be read (and counted) again, never skipped.
            log.warning("kafka.commit_failed", error=repr(exc), partitions=len(offsets))
            return False
        for tp, position in offsets.items():
            if self._positions.get(tp) == position:
                del self._positions[tp]
        return True

    def forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._positions.pop(tp, None)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            if self.on_tick is not None:
                self.on_tick()
            await self.commit()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics-committer")

    async def stop(self) -> None:
        """Stop counting and commit what was counted (call before the consumer stops)."""
        self.stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.commit()


class CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit what was counted on partitions about to be revoked, then forget them."""

    def __init__(self, committer: PositionCommitter) -> None:
        self._committer = committer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        partitions = set(revoked)
        if partitions:
            await self._committer.commit(partitions)
            self._committer.forget(partitions)
            log.info("kafka.partitions_revoked", partitions=len(partitions))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("kafka.partitions_assigned", partitions=len(assigned))


def register_handlers(
    broker: KafkaBroker,
    settings: MetricsSettings,
    *,
    recorder: FactRecorder,
    committer: PositionCommitter,
    topics: tuple[str, ...] = METRICS_TOPICS,
) -> None:
    """Subscribe the metrics service to ``topics`` in its own group (before the broker starts).

    The range assignor keeps the same partition number of every topic on one member, so a
    call's result and its status facts (both keyed by ``call_sid``, on topics with equal
    partition counts) meet in the same replica's per-call state.
    """
    subscriber = broker.subscriber(
        *topics,
        group_id=settings.group_id,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        partition_assignment_strategy=(RangePartitionAssignor,),
        listener=CommitOnRevoke(committer),
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
        max_poll_interval_ms=settings.kafka.max_poll_interval_ms,
        title="metrics-facts",
        description="Every fact and dead letter, counted into Prometheus metrics.",
    )

    @subscriber
    async def on_fact(message: KafkaMessage) -> None:
        record: Any = message.raw_message  # an aiokafka ConsumerRecord (not a batch)
        committer.consumer = message.consumer
        if committer.stopping or not committer.owns(record.topic, record.partition):
            return  # neither counted nor committed: the next reader counts it
        recorder.record(record.topic, record.value, dict(record.headers or ()))
        committer.counted(record.topic, record.partition, record.offset)
