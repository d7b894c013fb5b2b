"""Consumer lag of the voicebus consumer groups, with aiokafka's admin client.

For every watched group and each partition of its topics: the topic's end offset minus
the group's committed offset (a partition the group never committed counts from the
partition's beginning offset: new groups start from the earliest offset). Summed per
(group, topic) into ``voicebus_consumer_group_lag_messages``.

Committed offsets are read with ``list_consumer_group_offsets(group, partitions=...)``:
always with the partitions, which Kafka allows and the embedded broker needs. On the
embedded broker (Tansu) end offsets are the start of the last batch + 1, so lag there is
approximate (low by up to a batch); on Apache Kafka it is exact at the moment of the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from contracts.topics import ALL_TOPICS, COMMAND_TOPICS
from services.common.kafka import admin_client
from services.common.kafka_security import security_options
from services.common.settings import KafkaSettings
from services.metrics.metrics import LagMetrics

log = structlog.get_logger(__name__)

NO_OFFSET = -1


@dataclass(frozen=True)
class WatchedGroup:
    """A consumer group and its topics; ``topics=None``: those it has committed on."""

    group: str
    topics: tuple[str, ...] | None = None


def compute_lag(
    group: WatchedGroup,
    partitions: Mapping[str, Sequence[int]],
    committed: Mapping[TopicPartition, int],
    beginning: Mapping[TopicPartition, int],
    end: Mapping[TopicPartition, int],
) -> dict[str, int]:
    """Lag per topic of ``group`` (pure: the offsets are given).

    A topic of a group without fixed topics is included only when the group committed on
    at least one of its partitions. Negative differences (end offsets that lag behind a
    commit, as on the embedded broker) count as zero.
    """
    lag: dict[str, int] = {}
    topics = group.topics if group.topics is not None else tuple(partitions)
    for topic in topics:
        tps = [TopicPartition(topic, p) for p in partitions.get(topic, ())]
        offsets = {tp: committed.get(tp, NO_OFFSET) for tp in tps}
        if group.topics is None and all(o < 0 for o in offsets.values()):
            continue
        total = 0
        for tp, offset in offsets.items():
            start = offset if offset >= 0 else beginning.get(tp, 0)
            total += max(end.get(tp, 0) - start, 0)
        lag[topic] = total
    return lag


@dataclass
class LagMonitor:
    """Checks every ``interval_seconds`` and sets the lag gauges."""

    settings: KafkaSettings
    groups: Sequence[WatchedGroup]
    metrics: LagMetrics
    interval_seconds: float = 15.0
    _admin: AIOKafkaAdminClient | None = field(default=None, repr=False)
    _offsets: AIOKafkaConsumer | None = field(default=None, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def _topics(self) -> list[str]:
        wanted: dict[str, None] = {}
        for group in self.groups:
            for topic in group.topics if group.topics is not None else ALL_TOPICS:
                wanted[topic] = None
        return list(wanted)

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None:
            admin = admin_client(self.settings, client_id="metrics-lag")
            await admin.start()
            self._admin = admin
        if self._offsets is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap_servers,
                client_id=f"{self.settings.client_id}-metrics-offsets",
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=self.settings.request_timeout_ms,
                **security_options(self.settings),
            )
            await consumer.start()
            self._offsets = consumer
        return self._admin, self._offsets

    async def check(self) -> dict[tuple[str, str], int]:
        """One check: the lag of every watched (group, topic), also set on the gauges."""
        admin, consumer = await self._clients()
        # Partitions from a metadata request naming the topics: an unassigned consumer's
        # own metadata knows none on Apache Kafka.
        described = await admin.describe_topics(list(self._topics()))
        partitions = {
            t["topic"]: sorted(p["partition"] for p in t["partitions"])
            for t in described
            if t["error_code"] == 0 and t["partitions"]
        }
        tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        if not tps:
            return {}
        end = await consumer.end_offsets(tps)
        beginning = await consumer.beginning_offsets(tps)
        found: dict[tuple[str, str], int] = {}
        for group in self.groups:
            group_tps = [tp for tp in tps if group.topics is None or tp.topic in group.topics]
            answer = await admin.list_consumer_group_offsets(group.group, partitions=group_tps)
            committed = {tp: meta.offset for tp, meta in answer.items()}
            for topic, lag in compute_lag(group, partitions, committed, beginning, end).items():
                self.metrics.lag.labels(group.group, topic).set(lag)
                found[(group.group, topic)] = lag
        self.metrics.last_check.set(time.time())
        return found

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except (KafkaError, OSError, TimeoutError) as exc:
                self.metrics.checks.labels("failed").inc()
                log.warning("metrics.lag_check_failed", error=repr(exc))
                await self._reset()
            else:
                self.metrics.checks.labels("ok").inc()
            await asyncio.sleep(self.interval_seconds)

    async def _reset(self) -> None:
        admin, self._admin = self._admin, None
        offsets, self._offsets = self._offsets, None
        if admin is not None:
            await admin.close()
        if offsets is not None:
            await offsets.stop()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consumer-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reset()


def watched_groups(
    *, own_group: str, own_topics: Iterable[str], executor_group: str, extra: Iterable[str]
) -> list[WatchedGroup]:
    """The executor's group on the command topics, this service's own, and the extras."""
    groups = [
        WatchedGroup(executor_group, tuple(COMMAND_TOPICS)),
        WatchedGroup(own_group, tuple(own_topics)),
    ]
    known = {executor_group, own_group}
    groups.extend(WatchedGroup(g) for g in extra if g not in known)
    return groups
