"""Publishing the executor's facts: results and call details (with CloudEvents headers),
and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker

from contracts.details import CallDetails
from contracts.results import CommandResult
from contracts.topics import CALL_DETAILS, RESULT_TOPIC, dlq
from services.common.kafka import cloudevent_headers
from services.executor.incoming import IncomingCommand

SOURCE = "voicebus/executor"


def details_headers(
    fact: CallDetails, *, source: str = SOURCE, traceparent: str | None = None
) -> dict[str, str]:
    """CloudEvents binary-mode headers of a ``call.details`` fact (``ce_id``: its
    ``details_id``, so a fact published twice has one id)."""
    return cloudevent_headers(
        ce_type="voicebus.call.details",
        source=source,
        subject=fact.call_sid,
        event_id=fact.details_id,
        time=fact.fetched_at,
        extra={"traceparent": traceparent} if traceparent else None,
    )


@dataclass(frozen=True)
class FactPublisher:
    """Sends results and dead letters; each call returns once Kafka acknowledged it."""

    broker: KafkaBroker

    async def result(self, command: IncomingCommand, result: CommandResult) -> None:
        key = result.call_sid or result.command_id
        extra = {"traceparent": command.traceparent} if command.traceparent else None
        headers = cloudevent_headers(
            ce_type=f"voicebus.{result.command_type}.result",
            source=SOURCE,
            subject=key,
            time=result.completed_at,
            extra=extra,
        )
        await self.broker.publish(
            result.model_dump_json().encode(),
            topic=RESULT_TOPIC[command.topic],
            key=key.encode(),
            headers=headers,
        )

    async def details(self, command: IncomingCommand, fact: CallDetails) -> None:
        """A call.lookup's ``call.details`` fact, keyed by its call sid."""
        await self.broker.publish(
            fact.model_dump_json(by_alias=True).encode(),
            topic=CALL_DETAILS,
            key=fact.call_sid.encode(),
            headers=details_headers(fact, traceparent=command.traceparent),
        )

    async def dead_letter(self, command: IncomingCommand, reason: str) -> None:
        headers = {
            **command.headers,
            "error": reason,
            "origin_topic": command.topic,
            "origin_partition": str(command.partition),
            "origin_offset": str(command.offset),
            "failed_at": datetime.now(UTC).isoformat(),
        }
        await self.broker.publish(
            command.value or b"",
            topic=dlq(command.topic),
            key=command.key,
            headers=headers,
        )
