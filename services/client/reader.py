"""Read whole topics from a point in time, without a consumer group.

Every partition of the topics is assigned to the consumer directly (no group join, so no
wait for a rebalance and nothing committed), then positioned:

* ``since=None``: at the earliest offset;
* ``since=<aware datetime>``: at the first record whose timestamp is at or after it
  (``offsets_for_times``); a partition with no such record starts at its end offset.

End offsets are only approximate on the embedded broker (they can be *behind* the real end,
see EMBEDDED-BROKER.md), which is safe here: at worst a few older records are read again,
and records older than ``since`` are dropped before they are returned.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from services.client.errors import KafkaUnavailable, TopicsMissing
from services.common.kafka import MAX_MESSAGE_BYTES
from services.common.kafka_security import KafkaAccessError, check_access, security_options
from services.common.settings import KafkaSettings


@dataclass(frozen=True)
class Record:
    """One Kafka record, client-independent."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @classmethod
    def from_consumer(cls, record: Any) -> Record:
        headers = {
            name: raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            for name, raw in record.headers or ()
        }
        timestamp = record.timestamp if record.timestamp and record.timestamp > 0 else None
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=timestamp,
            key=record.key,
            value=record.value,
            headers=headers,
        )

    @property
    def key_text(self) -> str | None:
        return self.key.decode("utf-8", "replace") if self.key is not None else None

    @property
    def timestamp(self) -> datetime | None:
        if self.timestamp_ms is None:
            return None
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def coordinates(self) -> str:
        """``topic:partition:offset``: how the CLI names a record."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def json_value(self) -> Any:
        """The value as JSON, or ``None`` when it is not UTF-8 JSON."""
        if not self.value:
            return None
        try:
            return json.loads(self.value.decode("utf-8"))
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            return None


def kafka_unavailable(exc: BaseException, bootstrap_servers: str) -> KafkaUnavailable:
    return KafkaUnavailable(f"Kafka unreachable at {bootstrap_servers}: {exc}")


async def start_failed(exc: BaseException, settings: KafkaSettings) -> KafkaUnavailable:
    """:class:`KafkaUnavailable` for a client that could not start, saying why: aiokafka
    only says "Unable to bootstrap", so the connection is retraced once
    (:func:`~services.common.kafka_security.check_access`) for the setting to fix (a wrong
    password, an untrusted certificate, an address that does not answer)."""
    reason: BaseException = exc
    if not isinstance(exc, KafkaAccessError):
        try:
            await check_access(settings, wait=False)
        except KafkaAccessError as found:
            reason = found
    return kafka_unavailable(reason, settings.bootstrap_servers)


def _partitions(cluster: Any, topics: Sequence[str]) -> list[Any]:
    missing = [t for t in topics if not cluster.partitions_for_topic(t)]
    if missing:
        raise TopicsMissing(missing)
    return [TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t))]


class TopicReader:
    """Reads ``topics`` from ``since`` (``None``: the earliest offset)."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        *,
        since: datetime | None,
        client_id: str = "voicebus-reader",
    ) -> None:
        self.settings = settings
        self.bootstrap_servers = settings.bootstrap_servers
        self.topics = tuple(dict.fromkeys(topics))
        self.since = since
        self._since_ms = int(since.timestamp() * 1000) if since is not None else None
        self._client_id = client_id
        self._consumer: Any = None
        self._partitions: list[Any] = []
        self._end: dict[Any, int] = {}

    async def start(self) -> TopicReader:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=self.settings.request_timeout_ms,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
            **security_options(self.settings),
        )
        try:
            await consumer.start()
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            await consumer.stop()
            raise await start_failed(exc, self.settings) from exc
        self._consumer = consumer
        try:
            self._partitions = _partitions(await consumer._client.fetch_all_metadata(), self.topics)
            consumer.assign(self._partitions)
            await self._position()
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, KafkaError):
                raise kafka_unavailable(exc, self.bootstrap_servers) from exc
            raise
        return self

    async def _position(self) -> None:
        consumer = self._consumer
        self._end = dict(await consumer.end_offsets(self._partitions))
        if self._since_ms is None:
            await consumer.seek_to_beginning(*self._partitions)
            return
        found = await consumer.offsets_for_times(dict.fromkeys(self._partitions, self._since_ms))
        for tp in self._partitions:
            hit = found.get(tp)
            # Kafka answers None when no record is that recent; the embedded broker answers
            # offset 0 with timestamp -1: both mean "start at the end".
            if hit is None or hit.timestamp is None or hit.timestamp < 0:
                consumer.seek(tp, self._end[tp])
            else:
                consumer.seek(tp, hit.offset)

    async def batch(self, max_wait: float = 0.5) -> list[Record]:
        """The records fetched within ``max_wait`` seconds (possibly none), oldest first."""
        try:
            fetched = await self._consumer.getmany(timeout_ms=int(max_wait * 1000))
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            raise kafka_unavailable(exc, self.bootstrap_servers) from exc
        records = [Record.from_consumer(r) for rs in fetched.values() for r in rs]
        if self._since_ms is not None:
            records = [
                r for r in records if r.timestamp_ms is None or r.timestamp_ms >= self._since_ms
            ]
        records.sort(key=lambda r: (r.timestamp_ms or 0, r.topic, r.partition, r.offset))
        return records

    async def caught_up(self) -> bool:
        """Whether every partition was read up to its end offset as of :meth:`start`."""
        for tp in self._partitions:
            if await self._consumer.position(tp) < self._end.get(tp, 0):
                return False
        return True

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()


async def _metadata(settings: KafkaSettings, client_id: str) -> tuple[Any, Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        enable_auto_commit=False,
        request_timeout_ms=settings.request_timeout_ms,
        **security_options(settings),
    )
    try:
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()
    except KafkaError as exc:
        await consumer.stop()
        raise await start_failed(exc, settings) from exc
    return consumer, cluster


async def topic_partitions(
    settings: KafkaSettings, *, client_id: str = "voicebus-cli"
) -> dict[str, int]:
    """Every topic the broker has, with its partition count."""
    consumer, cluster = await _metadata(settings, client_id)
    try:
        return {t: len(cluster.partitions_for_topic(t) or ()) for t in cluster.topics()}
    finally:
        await consumer.stop()


async def fetch_record(
    settings: KafkaSettings,
    topic: str,
    partition: int,
    offset: int,
    *,
    max_wait: float = 10.0,
    client_id: str = "voicebus-cli",
) -> Record | None:
    """The record at ``topic:partition:offset``, or ``None`` when there is none."""
    consumer, cluster = await _metadata(settings, client_id)
    try:
        if partition not in (cluster.partitions_for_topic(topic) or ()):
            return None
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = asyncio.get_running_loop().time() + max_wait
        while asyncio.get_running_loop().time() < deadline:
            fetched = await consumer.getmany(tp, timeout_ms=500)
            for raw in fetched.get(tp, ()):
                if raw.offset == offset:
                    return Record.from_consumer(raw)
                if raw.offset > offset:
                    return None
        return None
    finally:
        await consumer.stop()
