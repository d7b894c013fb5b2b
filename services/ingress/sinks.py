"""Where callbacks go: the ports the service layer writes to, and their Kafka adapter.

``FactSink.put`` returns only once the fact is durable: acknowledged by Kafka (acks=all)
or, in the service as it runs, fsync'd to the local spool (:mod:`services.ingress.spooling`
wraps :class:`KafkaOutlet`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from faststream.exceptions import FastStreamException

from contracts.status import CallStatusEvent
from contracts.topics import CALL_STATUS, dlq
from services.common.kafka import (
    MAX_MESSAGE_BYTES,
    ensure_topics,
    status_fact_headers,
)
from services.common.kafka_health import (
    HEALTH_TOPIC,
    HEALTH_TOPIC_CONFIG,
    KafkaHealth,
    KafkaWriteProbe,
    start_write_probe,
)
from services.common.kafka_security import security_options
from services.common.logging import redact
from services.common.settings import KafkaSettings
from services.ingress.spool import SpoolRecord

log = structlog.get_logger(__name__)

CALL_STATUS_DLQ = dlq(CALL_STATUS)
OWN_TOPICS = (CALL_STATUS, CALL_STATUS_DLQ, HEALTH_TOPIC)
OWN_TOPIC_CONFIGS = {HEALTH_TOPIC: HEALTH_TOPIC_CONFIG}
CE_SOURCE = "voicebus/ingress"
ORIGIN = "ingress"
MAX_ERROR_HEADER_CHARS = 512
#: The producer's record batch size: one call's queued callbacks fit in one batch
#: (:meth:`KafkaOutlet.send_group`); well below Kafka's default 1 MB message size.
MAX_BATCH_BYTES = 256 * 1024
#: What a group of one call's records may add up to (values, keys, headers).
GROUP_BYTES = MAX_BATCH_BYTES // 2


class SinkUnavailable(Exception):
    """The sink could not make the message durable (the caller answers 503)."""


@dataclass(frozen=True)
class DeadLetter:
    """The raw bytes of a callback that could not be read, and why."""

    body: bytes
    reason: str
    content_type: str
    received_at: datetime


class FactSink(Protocol):
    async def put(self, event: CallStatusEvent) -> None:
        """Return once ``event`` is durable; raise :class:`SinkUnavailable` otherwise."""


class DeadLetterSink(Protocol):
    async def put(self, letter: DeadLetter) -> None:
        """Return once ``letter`` is durable; raise :class:`SinkUnavailable` otherwise."""


class Outlet(Protocol):
    """The sinks plus their lifecycle (what the composition root starts and stops)."""

    @property
    def facts(self) -> FactSink: ...

    @property
    def dead_letters(self) -> DeadLetterSink: ...

    async def start(self) -> None:
        """Connect and create what is missing; raise when it cannot (the caller retries)."""

    async def stop(self) -> None:
        """Flush and disconnect."""

    @property
    def ready(self) -> bool:
        """Started, and ready as far as ``/readyz`` is concerned."""

    def status(self) -> dict[str, object]:
        """What ``/readyz`` shows besides readiness (e.g. Kafka state, spool depth)."""


def fact_headers(event: CallStatusEvent) -> dict[str, str]:
    """CloudEvents binary-mode headers of a ``call.status`` fact from here."""
    return status_fact_headers(event, source=CE_SOURCE)


def dead_letter_headers(letter: DeadLetter) -> dict[str, str]:
    """``error``, ``origin``, ``content-type``, ``received_at``: never the URL or the token."""
    reason = redact(letter.reason)
    if len(reason) > MAX_ERROR_HEADER_CHARS:
        reason = reason[: MAX_ERROR_HEADER_CHARS - 3] + "..."
    return {
        "error": reason,
        "origin": ORIGIN,
        "content-type": letter.content_type,
        "received_at": letter.received_at.isoformat(),
    }


def fact_record(event: CallStatusEvent) -> SpoolRecord:
    """The ``call.status`` record of ``event`` (key: the call sid)."""
    return SpoolRecord(
        topic=CALL_STATUS,
        key=event.call_sid.encode(),
        value=event.model_dump_json(by_alias=True).encode(),
        headers=fact_headers(event),
    )


def dead_letter_record(letter: DeadLetter) -> SpoolRecord:
    """The ``call.status.dlq`` record of ``letter`` (no key: the raw bytes as received)."""
    return SpoolRecord(
        topic=CALL_STATUS_DLQ, key=None, value=letter.body, headers=dead_letter_headers(letter)
    )


class RecordProducer(Protocol):
    """Kafka as the spooling outlet sees it."""

    async def connect(self) -> None:
        """(Re)create missing topics and connect; raise when Kafka is not there."""

    async def send(self, record: SpoolRecord) -> Awaitable[object]:
        """Enqueue ``record`` behind those sent before; the awaitable resolves on the ack."""

    async def send_group(self, records: Sequence[SpoolRecord]) -> Awaitable[object]:
        """Enqueue ``records`` (one topic, one key) as **one** record batch: Kafka appends
        all of them, in this order, or none; the awaitable resolves on the ack."""

    async def stop(self) -> None:
        """Flush and disconnect."""


class KafkaFactSink:
    def __init__(self, producer: RecordProducer) -> None:
        self._producer = producer

    async def put(self, event: CallStatusEvent) -> None:
        await _publish(self._producer, fact_record(event))


class KafkaDeadLetterSink:
    def __init__(self, producer: RecordProducer) -> None:
        self._producer = producer

    async def put(self, letter: DeadLetter) -> None:
        await _publish(self._producer, dead_letter_record(letter))


async def _publish(producer: RecordProducer, record: SpoolRecord) -> None:
    try:
        ack = await producer.send(record)
        # shield: a caller's timeout must not cancel the producer's own delivery future.
        await asyncio.shield(ack)
    except (KafkaError, FastStreamException) as exc:
        raise SinkUnavailable(f"{record.topic}: {type(exc).__name__}") from exc


class KafkaOutlet:
    """One aiokafka producer (acks=all; idempotent where the settings say) shared by both
    sinks, and the write probe that tells ``health`` whether Kafka takes writes.

    aiokafka directly rather than through FastStream's broker: the records and their
    headers are the same (``content-type`` first, a ``correlation_id`` as FastStream
    adds), without FastStream's per-publish layers, and a call's callbacks that queued up
    together go out as one record batch (:meth:`send_group`).
    """

    def __init__(
        self, settings: KafkaSettings, health: KafkaHealth | None = None, *, linger_ms: int = 2
    ) -> None:
        self._settings = settings
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        self.health = health or KafkaHealth()
        self._probe: KafkaWriteProbe | None = None
        self._facts = KafkaFactSink(self)
        self._dead_letters = KafkaDeadLetterSink(self)

    @property
    def facts(self) -> FactSink:
        return self._facts

    @property
    def dead_letters(self) -> DeadLetterSink:
        return self._dead_letters

    @property
    def ready(self) -> bool:
        return True  # start() only returns once Kafka is connected

    def status(self) -> dict[str, object]:
        return self.health.status()

    def _new_producer(self) -> AIOKafkaProducer:
        settings = self._settings
        return AIOKafkaProducer(
            bootstrap_servers=[
                server.strip() for server in settings.bootstrap_servers.split(",") if server.strip()
            ],
            client_id=f"{settings.client_id}-ingress",
            acks="all",
            enable_idempotence=settings.enable_idempotence,
            request_timeout_ms=settings.request_timeout_ms,
            max_request_size=MAX_MESSAGE_BYTES,
            linger_ms=self._linger_ms,
            max_batch_size=MAX_BATCH_BYTES,
            **security_options(settings),
        )

    async def connect(self) -> None:
        # Topics again on every (re)connection: a replaced broker (e.g. the embedded one,
        # memory only) starts empty, and auto-created topics get the wrong partition count.
        await ensure_topics(
            self._settings, OWN_TOPICS, attempts=1, wait=False, configs=OWN_TOPIC_CONFIGS
        )
        await self._connect_producer()

    async def _connect_producer(self) -> None:
        if self._producer is None:
            producer = self._new_producer()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        await self._start_probe()

    async def _start_probe(self) -> None:
        if self._probe is None:
            self._probe = await start_write_probe(
                self._settings, self._probe_publish, self.health, service="ingress"
            )

    async def _probe_publish(self, value: bytes, partition: int, key: bytes) -> object:
        return await self._started().send_and_wait(
            HEALTH_TOPIC, value, key=key, partition=partition, headers=_headers({})
        )

    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise KafkaTimeoutError("the ingress's producer is not connected yet")
        return self._producer

    async def send(self, record: SpoolRecord) -> Awaitable[object]:
        future: Awaitable[object] = await self._started().send(
            record.topic, record.value, key=record.key, headers=_headers(record.headers)
        )
        return future

    async def send_group(self, records: Sequence[SpoolRecord]) -> Awaitable[object]:
        producer = self._started()
        first = records[0]
        partitions = sorted(await producer.partitions_for(first.topic))
        partition = self._partitioner(first.key, partitions, partitions)
        batch = producer.create_batch()
        for record in records:
            if record.topic != first.topic or record.key != first.key:
                raise ValueError("a group is one topic and one key")
            if (
                batch.append(
                    key=record.key,
                    value=record.value,
                    timestamp=None,
                    headers=_headers(record.headers),
                )
                is None
            ):
                raise MessageSizeTooLargeError("the group does not fit in one record batch")
        future: Awaitable[object] = await producer.send_batch(
            batch, first.topic, partition=partition
        )
        return future

    async def start(self) -> None:
        await ensure_topics(self._settings, OWN_TOPICS, attempts=3, configs=OWN_TOPIC_CONFIGS)
        await self._connect_producer()

    async def stop(self) -> None:
        if self._probe is not None:
            await self._probe.stop()
        if self._producer is not None:
            await self._producer.stop()


def _headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    """Record headers as FastStream's publish wrote them: ``content-type`` first, then a
    ``correlation_id``, then the record's own."""
    merged = {"content-type": "", "correlation_id": str(uuid.uuid4()), **headers}
    return [(name, value.encode()) for name, value in merged.items()]
