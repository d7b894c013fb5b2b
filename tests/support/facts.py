"""Read fact topics in tests and wait for conditions with a timeout (never bare sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings

#: Partitions of the topics the suite's services create (``kafka_settings`` in conftest).
SUITE_TOPIC_PARTITIONS = 4


@dataclass
class Fact:
    topic: str
    key: str | None
    value: Any
    headers: dict[str, str]
    raw: bytes | None
    offset: int
    partition: int
    #: the record's timestamp (its producer's time), milliseconds
    timestamp_ms: int = 0
    #: The headers as they came off the wire, in order (for parsers such as CloudEvents').
    raw_headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class FactReader:
    """Consumes topics from the earliest offset in its own group and keeps what it saw."""

    bootstrap_servers: str
    topics: Sequence[str]
    seen: list[Fact] = field(default_factory=list)
    #: as consumers of voicebus's facts should read: aborted transactions never show
    isolation_level: str = "read_committed"
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> FactReader:
        # Subscribing to a topic that does not exist yet fails (no auto-creation): create
        # missing ones as a service would (a reader often starts before the services).
        settings = KafkaSettings(
            bootstrap_servers=self.bootstrap_servers, topic_partitions=SUITE_TOPIC_PARTITIONS
        )
        await ensure_topics(settings, self.topics)
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap_servers,
            group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            isolation_level=self.isolation_level,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            try:
                value = json.loads(record.value) if record.value else None
            except (ValueError, RecursionError):
                value = None  # poison on purpose: tests look at .raw
            self.seen.append(
                Fact(
                    topic=record.topic,
                    key=record.key.decode() if record.key else None,
                    value=value,
                    headers={k: v.decode(errors="replace") for k, v in record.headers},
                    raw=record.value,
                    offset=record.offset,
                    partition=record.partition,
                    timestamp_ms=record.timestamp or 0,
                    raw_headers=tuple(record.headers),
                )
            )

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer:
            await self._consumer.stop()

    def matching(
        self, topic: str, predicate: Callable[[Fact], bool] = lambda _: True
    ) -> list[Fact]:
        return [f for f in self.seen if f.topic == topic and predicate(f)]

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[Fact], bool] = lambda _: True,
        *,
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[Fact]:
        """Wait until ``count`` facts on ``topic`` match; fail with what was seen otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(topic, predicate)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        seen = [(f.topic, f.key, f.value) for f in self.seen][-20:]
        raise AssertionError(
            f"waited {timeout}s for {count} fact(s) on {topic}; "
            f"got {len(self.matching(topic, predicate))}; last seen: {seen}"
        )


async def wait_until(
    condition: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def for_command(command_id: str) -> Callable[[Fact], bool]:
    """Facts (results, correlated statuses) of the command ``command_id``."""
    return lambda fact: isinstance(fact.value, dict) and fact.value.get("command_id") == command_id
