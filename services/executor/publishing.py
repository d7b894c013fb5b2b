"""The executor's facts as records: results and call details (with CloudEvents headers),
and dead letters.

They are written through the command's partition lane (services/executor/state/lanes.py),
in the same Kafka transaction as the command's outcome (a backfill's call details: as its
checkpoint) where the broker has transactions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.details import CallDetails
from contracts.results import CommandResult
from contracts.topics import CALL_DETAILS, RESULT_TOPIC, dlq
from services.common.kafka import cloudevent_headers
from services.executor.incoming import IncomingCommand
from services.executor.state.records import Record

SOURCE = "voicebus/executor"


def _headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers.items()]


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


def details_record(command: IncomingCommand, fact: CallDetails) -> Record:
    """A call.lookup's ``call.details`` fact, keyed by its call sid."""
    return Record(
        topic=CALL_DETAILS,
        partition=None,
        key=fact.call_sid.encode(),
        value=fact.model_dump_json(by_alias=True).encode(),
        headers=_headers(details_headers(fact, traceparent=command.traceparent)),
    )


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
