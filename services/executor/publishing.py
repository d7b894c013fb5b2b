"""The executor's facts as records: results (with CloudEvents headers) and dead letters.

They are written through the command's partition lane (services/executor/state/lanes.py),
in the same Kafka transaction as the command's outcome where the broker has transactions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.results import CommandResult
from contracts.topics import RESULT_TOPIC, dlq
from services.common.kafka import cloudevent_headers
from services.executor.incoming import IncomingCommand
from services.executor.state.records import Record

SOURCE = "voicebus/executor"


def _headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers.items()]


def result_record(command: IncomingCommand, result: CommandResult) -> Record:
    """The result fact, keyed by the call sid (else the command id)."""
    key = result.call_sid or result.command_id
    extra = {"traceparent": command.traceparent} if command.traceparent else None
    headers = cloudevent_headers(
        ce_type=f"voicebus.{result.command_type}.result",
        source=SOURCE,
        subject=key,
        time=result.completed_at,
        extra=extra,
    )
    return Record(
        topic=RESULT_TOPIC[command.topic],
        partition=None,
        key=key.encode(),
        value=result.model_dump_json().encode(),
        headers=_headers(headers),
    )


def dead_letter_record(command: IncomingCommand, reason: str) -> Record:
    """The command's bytes as received, with why and where they came from."""
    headers = {
        **command.headers,
        "error": reason,
        "origin_topic": command.topic,
        "origin_partition": str(command.partition),
        "origin_offset": str(command.offset),
        "failed_at": datetime.now(UTC).isoformat(),
    }
    return Record(
        topic=dlq(command.topic),
        partition=None,
        key=command.key,
        value=command.value or b"",
        headers=_headers(headers),
    )
