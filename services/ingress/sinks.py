"""Where callbacks go: the ports the service layer writes to, and their Kafka adapter.

``FactSink.put`` returns only once the fact is durable. Today that means "Kafka
acknowledged it" (acks=all); a spooling sink (fsync to local disk, replay to Kafka when it
is back) can replace :class:`KafkaFactSink` without touching the HTTP or service layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog
from aiokafka.errors import KafkaError
from faststream.exceptions import FastStreamException
from faststream.kafka import KafkaBroker

from contracts.status import CallStatusEvent
from contracts.topics import CALL_STATUS, dlq
from services.common.kafka import cloudevent_headers, ensure_topics, make_broker
from services.common.logging import redact
from services.common.settings import KafkaSettings

log = structlog.get_logger(__name__)

CALL_STATUS_DLQ = dlq(CALL_STATUS)
CE_SOURCE = "voicebus/ingress"
ORIGIN = "ingress"
MAX_ERROR_HEADER_CHARS = 512


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


def fact_headers(event: CallStatusEvent) -> dict[str, str]:
    """CloudEvents binary-mode headers of a ``call.status`` fact."""
    return cloudevent_headers(
        ce_type=f"voicebus.call.status.{event.event_type}",
        source=CE_SOURCE,
        event_id=event.event_id,
        subject=event.call_sid,
        time=event.received_at,
    )


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


class KafkaFactSink:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def put(self, event: CallStatusEvent) -> None:
        try:
            # publish() waits for the broker's acknowledgement (acks=all, no_confirm=False).
            await self._broker.publish(
                event.model_dump_json(by_alias=True).encode(),
                topic=CALL_STATUS,
                key=event.call_sid.encode(),
                headers=fact_headers(event),
            )
        except (KafkaError, FastStreamException) as exc:
            raise SinkUnavailable(f"{CALL_STATUS}: {type(exc).__name__}") from exc


class KafkaDeadLetterSink:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def put(self, letter: DeadLetter) -> None:
        try:
            await self._broker.publish(
                letter.body, topic=CALL_STATUS_DLQ, headers=dead_letter_headers(letter)
            )
        except (KafkaError, FastStreamException) as exc:
            raise SinkUnavailable(f"{CALL_STATUS_DLQ}: {type(exc).__name__}") from exc


class KafkaOutlet:
    """One FastStream broker (producer only) shared by both sinks."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self.broker = make_broker(settings, client_id="ingress")
        self._facts = KafkaFactSink(self.broker)
        self._dead_letters = KafkaDeadLetterSink(self.broker)

    @property
    def facts(self) -> FactSink:
        return self._facts

    @property
    def dead_letters(self) -> DeadLetterSink:
        return self._dead_letters

    async def start(self) -> None:
        await ensure_topics(self._settings, [CALL_STATUS, CALL_STATUS_DLQ], attempts=3)
        await self.broker.connect()

    async def stop(self) -> None:
        await self.broker.stop()
