"""Kafka side of the executor: the thin subscriber, rebalance listener and committer.

FastStream delivers each command message; the subscriber only hands it to the
``KeyOrderedDispatcher`` (which blocks when the concurrency bound is reached, pausing
fetching). Offsets are committed by the committer task and on revocation, explicitly per
partition at the dispatcher's safe position — never FastStream's commit-everything ack.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts.topics import COMMAND_TOPICS
from services.executor.dispatch import KeyOrderedDispatcher
from services.executor.incoming import IncomingCommand
from services.executor.pipeline import CommandPipeline
from services.executor.progress_kafka import KafkaPartitionProgress
from services.executor.settings import ExecutorSettings

log = structlog.get_logger(__name__)


@dataclass
class OffsetCommitter:
    """Commits the dispatcher's safe positions, periodically and on demand."""

    dispatcher: KeyOrderedDispatcher
    interval_seconds: float
    consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def commit(self, positions: dict[tuple[str, int], int]) -> bool:
        if not positions or self.consumer is None:
            return True
        offsets = {TopicPartition(t, p): o for (t, p), o in positions.items()}
        try:
            await self.consumer.commit(offsets)
        except (KafkaError, AssertionError) as exc:
            # Not committed: Kafka may deliver these commands again, never skip them.
            log.warning("kafka.commit_failed", error=repr(exc), partitions=len(offsets))
            return False
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            await self.commit(self.dispatcher.take_commits())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="offset-committer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class PartitionState(Protocol):
    """What moves with a partition: its write lane, its restored state, pending outcomes."""

    async def acquire(self, partitions: set[int]) -> None:
        """Before the partitions' commands run: lanes opened (fencing the previous owner),
        state restored. Raises when that cannot be done in time."""

    async def release(self, partitions: set[int], positions: Mapping[tuple[str, int], int]) -> None:
        """After their work finished or was cut short: commit ``positions`` and let go."""


class CommandRebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """On revocation: finish (within the grace period), commit, release the partitions'
    state. On assignment: acquire the partitions' state before their commands run."""

    def __init__(
        self,
        dispatcher: KeyOrderedDispatcher,
        state: PartitionState,
        grace: float,
        *,
        topics: tuple[str, ...],
        on_share: Callable[[int, int], None] | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
        progress: KafkaPartitionProgress | None = None,
    ):
        self._dispatcher = dispatcher
        self._progress = progress
        self._state = state
        self._grace = grace
        self._topics = topics
        self._on_share = on_share
        self._on_fatal = on_fatal
        self.consumer: Any = None  # set once the subscriber exists

    async def on_partitions_revoked(self, revoked: Any) -> None:
        tps = [(tp.topic, tp.partition) for tp in revoked]
        if not tps:
            return
        positions = await self._dispatcher.revoke(tps, self._grace)
        await self._state.release({p for _, p in tps}, positions)
        log.info("kafka.partitions_revoked", partitions=len(tps))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = {tp.partition for tp in assigned}
        # Taken by the dispatcher at once: aiokafka can deliver the partitions' records
        # while their state is still being restored (they wait for it, see
        # ``KafkaLanes.acquired``); a record refused as "revoked" here would be skipped,
        # since the consumer's position has moved past it.
        self._dispatcher.assign((tp.topic, tp.partition) for tp in assigned)
        if self._progress is not None:
            self._progress.assigned((tp.topic, tp.partition) for tp in assigned)
        try:
            await self._state.acquire(partitions)
        except Exception as exc:
            # aiokafka would log and carry on with partitions whose state is missing:
            # never run their commands, stop the executor instead.
            log.exception("kafka.partitions_not_acquired", partitions=sorted(partitions))
            if self._on_fatal is not None:
                self._on_fatal(exc)
            raise
        total = self._total_partitions()
        log.info("kafka.partitions_assigned", partitions=len(assigned), total=total)
        if self._on_share is not None:
            self._on_share(len(assigned), total)

    def _total_partitions(self) -> int:
        """Partitions of the command topics in the group (aiokafka's eager rebalancing
        hands each member its whole assignment, so owned/total is this member's share)."""
        if self.consumer is None:
            return 0
        return sum(len(self.consumer.partitions_for_topic(t) or ()) for t in self._topics)


@dataclass(frozen=True)
class _LazyConsumer:
    """The subscriber's aiokafka consumer, which exists only once the broker started."""

    subscriber: Any

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        consumer = getattr(self.subscriber, "consumer", None)
        return consumer.partitions_for_topic(topic) if consumer is not None else None


async def _whole_message(message: Any) -> Any:
    """The message itself, body undecoded, as the handler's argument: ``decode_command``
    alone decides what is readable (a body FastStream's JSON decoder chokes on must still
    reach the DLQ, not be dropped), and the broker injects nothing (``apply_types=False``:
    FastDepends would resolve a ``message: KafkaMessage`` argument in a worker thread for
    every command: a thread hand-off per command, bench/RESULTS.md "Many accounts")."""
    return message


def register_handlers(
    broker: KafkaBroker,
    settings: ExecutorSettings,
    *,
    dispatcher: KeyOrderedDispatcher,
    committer: OffsetCommitter,
    pipeline: CommandPipeline,
    state: PartitionState,
    topics: tuple[str, ...] = COMMAND_TOPICS,
    on_share: Callable[[int, int], None] | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
    progress: KafkaPartitionProgress | None = None,
) -> None:
    """Subscribe the executor to its command topics (called before the broker starts).

    ``on_share(owned, total)`` hears this member's partition count after every rebalance
    (the rate limiter's share of each account's limit follows it). ``progress`` (the
    dispatcher's view of the consumer's fetches) is plugged into the subscriber's consumer.
    """
    listener = CommandRebalanceListener(
        dispatcher,
        state,
        settings.shutdown_grace_seconds,
        topics=topics,
        on_share=on_share,
        on_fatal=on_fatal,
        progress=progress,
    )
    subscriber = broker.subscriber(
        *topics,
        group_id=settings.group_id,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        # Partition p of every command topic to the same member: a call's lwb.action and
        # leg.hangup (both keyed by call_sid), and the state of partition p, move together.
        partition_assignment_strategy=(RangePartitionAssignor,),
        isolation_level="read_committed",
        listener=listener,
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
        max_poll_interval_ms=settings.kafka.max_poll_interval_ms,
        decoder=_whole_message,
        title="executor-commands",
        description="Commands executed against Exotel; each gets one result fact.",
    )

    listener.consumer = _LazyConsumer(subscriber)
    if progress is not None:
        progress.consumer = lambda: getattr(subscriber, "consumer", None)
    ordering_window = settings.ordering_window_seconds

    @subscriber
    async def on_command(message: KafkaMessage) -> None:
        record = message.raw_message
        committer.consumer = message.consumer
        command = IncomingCommand.from_record(record)
        await dispatcher.submit(
            (command.topic, command.partition),
            command.offset,
            command.ordering_key,
            partial(pipeline.process, command),
            timestamp_ms=command.timestamp_ms,
            hold_seconds=command.hold_seconds(ordering_window),
            after=command.co_partitions,
        )
