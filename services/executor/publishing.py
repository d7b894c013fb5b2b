"""Publishing the executor's facts: results (with CloudEvents headers) and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker

from contracts.results import CommandResult
from contracts.topics import RESULT_TOPIC, dlq
from services.common.kafka import cloudevent_headers
from services.executor.incoming import IncomingCommand

SOURCE = "voicebus/executor"


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
