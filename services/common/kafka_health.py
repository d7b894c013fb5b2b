"""Can this service write to Kafka right now? A write probe that ``/readyz`` reports.

A consumer's or producer's connection state does not answer that: with two of three
brokers gone, the survivor still answers metadata requests (its view frozen while the
controller quorum is lost), yet every ``acks=all`` write to a topic with
``min.insync.replicas=2`` waits and fails. So every ``KAFKA_HEALTH_PROBE_SECONDS`` each
service writes one small record to every partition of ``voicebus.health`` (compacted:
one record per service and partition survives) through its own producer, with the same
``acks=all``, and records whether all were acknowledged within the probe's timeout. Real
writes that fail (a result, a fact) count too, so ``/readyz`` turns as soon as work does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from faststream.kafka import KafkaBroker

from services.common.kafka import topic_partitions
from services.common.settings import KafkaSettings

log = structlog.get_logger(__name__)

HEALTH_TOPIC = "voicebus.health"
HEALTH_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": str(6 * 3600 * 1000)}

#: ``publish(value, partition, key)``: a write with the service's producer, returning
#: once Kafka acknowledged it.
Publish = Callable[[bytes, int, bytes], Awaitable[object]]


@dataclass
class KafkaHealth:
    """The last verdict on writing to Kafka, and since when it holds."""

    clock: Callable[[], float] = time.monotonic
    writable: bool = True
    error: str | None = None
    _since: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._since = self.clock()

    def succeeded(self) -> None:
        if not self.writable:
            log.info("kafka.writable_again", after_seconds=round(self.clock() - self._since, 1))
            self._since = self.clock()
        self.writable, self.error = True, None

    def failed(self, error: str) -> None:
        if self.writable:
            log.warning("kafka.not_writable", error=error)
            self._since = self.clock()
        self.writable, self.error = False, error

    def status(self) -> dict[str, object]:
        """What ``/readyz`` shows: ``kafka`` writable or not, and why, for how long."""
        if self.writable:
            return {"kafka": "writable"}
        return {
            "kafka": "not writable",
            "kafka_error": self.error,
            "kafka_unwritable_seconds": round(self.clock() - self._since, 1),
        }


class KafkaWriteProbe:
    """Writes to every partition of :data:`HEALTH_TOPIC` every ``interval`` seconds."""

    def __init__(
        self,
        publish: Publish,
        health: KafkaHealth,
        *,
        service: str,
        partitions: list[int],
        interval: float,
        timeout: float,
    ) -> None:
        self._publish = publish
        self._health = health
        self._key = f"{service}@{socket.gethostname()}".encode()
        self._service = service
        self._partitions = partitions
        self._interval = interval
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None

    async def probe(self) -> bool:
        """One round: whether every partition acknowledged within the timeout."""
        value = json.dumps({"service": self._service, "at": datetime.now(UTC).isoformat()})
        writes = [
            asyncio.ensure_future(self._publish(value.encode(), p, self._key))
            for p in self._partitions
        ]
        done, pending = await asyncio.wait(writes, timeout=self._timeout)
        for write in pending:
            write.cancel()
        failed = [w for w in done if w.exception() is not None]
        if pending or failed:
            error = (
                f"{len(pending)} of {len(writes)} {HEALTH_TOPIC} partitions unacknowledged "
                f"after {self._timeout:g}s"
                if pending
                else f"{type(failed[0].exception()).__name__}: {failed[0].exception()}"
            )
            self._health.failed(error[:300])
            return False
        self._health.succeeded()
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.probe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a probe never takes the service down
                self._health.failed(f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        if self._partitions and self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="kafka-write-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def start_write_probe(
    settings: KafkaSettings, publish: Publish, health: KafkaHealth, *, service: str
) -> KafkaWriteProbe:
    """A started probe of ``service`` (``voicebus.health`` must exist: see ensure_topics)."""
    probe = KafkaWriteProbe(
        publish,
        health,
        service=service,
        partitions=await topic_partitions(settings, HEALTH_TOPIC)
        if settings.health_probe_seconds > 0
        else [],
        interval=settings.health_probe_seconds,
        timeout=settings.health_probe_timeout_seconds,
    )
    probe.start()
    return probe


def publish_with(broker: KafkaBroker) -> Publish:
    """Probe writes through ``broker``'s own producer (the one the service's facts use)."""

    async def publish(value: bytes, partition: int, key: bytes) -> object:
        return await broker.publish(value, topic=HEALTH_TOPIC, partition=partition, key=key)

    return publish
