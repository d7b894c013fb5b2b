"""How ledger entries and command-index rows look as Kafka records, and back.

A ledger record: key ``<command type>:<command id>``, the ``LedgerEntry`` as JSON, and two
headers (``voicebus-state``, ``voicebus-at``) so a restore files the record without
parsing its JSON. An index record: the same key, a few bytes of JSON saying the command's
home partition and how far it got. Records without the headers (written before them) are
read from their JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from services.executor.state.store import EntryRow, IndexRow, State

LEDGER_TOPIC = "voicebus.executor.ledger"
INDEX_TOPIC = "voicebus.executor.command-index"
#: Seven days of history (a duplicate arriving later than that is executed again).
RETENTION_MS = 7 * 24 * 3600 * 1000
LEDGER_TOPIC_CONFIG = {"cleanup.policy": "compact", "retention.ms": str(RETENTION_MS)}
INDEX_TOPIC_CONFIG = {"cleanup.policy": "compact", "retention.ms": str(RETENTION_MS)}

STATE_HEADER = "voicebus-state"
AT_HEADER = "voicebus-at"
#: Records the executor writes to learn where a partition ends (Tansu's end offsets are
#: not exact): skipped by every reader.
BARRIER_KEY = b"__barrier__"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int | None
    key: bytes | None
    value: bytes
    headers: Headers


def ledger_record(*, key: str, partition: int, state: State, at: float, value: bytes) -> Record:
    headers = [(STATE_HEADER, state.encode()), (AT_HEADER, repr(at).encode())]
    return Record(LEDGER_TOPIC, partition, key.encode(), value, headers)


def index_record(*, key: str, partition: int, state: State, at: float) -> Record:
    """Partitioned by key (the default partitioner): every replica reads every partition."""
    value = json.dumps({"partition": partition, "state": state, "at": at}).encode()
    return Record(INDEX_TOPIC, None, key.encode(), value, [])


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def entry_row(
    partition: int, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> EntryRow | None:
    """The store row of a ledger record read back; None for barriers and unreadable ones."""
    if not key or key == BARRIER_KEY or not value:
        return None
    state = _header(headers, STATE_HEADER)
    at = _header(headers, AT_HEADER)
    try:
        if state is not None and at is not None:
            state_text = state.decode()
            when = float(at)
        else:
            body = json.loads(value)
            state_text = body["state"]
            when = _epoch(body["at"])
    except (ValueError, KeyError, TypeError):
        return None
    if state_text not in ("intent", "done"):
        return None
    return EntryRow(key.decode(), partition, state_text, when, value)  # type: ignore[arg-type]


def index_row(key: bytes | None, value: bytes | None) -> IndexRow | None:
    if not key or key == BARRIER_KEY or not value:
        return None
    try:
        body = json.loads(value)
        state, partition, at = body["state"], int(body["partition"]), float(body["at"])
    except (ValueError, KeyError, TypeError):
        return None
    if state not in ("intent", "done"):
        return None
    return IndexRow(key.decode(), partition, state, at)


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()
