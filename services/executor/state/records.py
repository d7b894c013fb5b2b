"""How ledger entries and command-index rows look as Kafka records, and back.

A ledger record: key ``<command type>:<command id>``, the ``LedgerEntry`` as JSON, and two
headers (``voicebus-state``, ``voicebus-at``) so a restore files the record without
parsing its JSON. An index record: the same key, a few bytes of JSON saying the command's
home partition and how far it got, and the same in headers (``voicebus-state``,
``voicebus-at``, ``voicebus-partition``). Records without the headers (written before
them) are read from their JSON.

A restore reads every record of its partitions and of the whole index (millions), so the
readers here cost a pass over a record's two or three headers and a tuple: no JSON, no
model. What they check is what the store relies on: a state of ``intent`` or ``done``, a
time and a partition that are numbers; a record failing that is skipped as unreadable.
The ledger value itself is validated when a command is looked up (``ledger._parse``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from services.executor.state.store import NO_OFFSET, EntryRow, IndexRow, State

LEDGER_TOPIC = "voicebus.executor.ledger"
INDEX_TOPIC = "voicebus.executor.command-index"
#: Seven days of history (a duplicate arriving later than that is executed again).
RETENTION_MS = 7 * 24 * 3600 * 1000
LEDGER_TOPIC_CONFIG = {"cleanup.policy": "compact", "retention.ms": str(RETENTION_MS)}
INDEX_TOPIC_CONFIG = {"cleanup.policy": "compact", "retention.ms": str(RETENTION_MS)}

STATE_HEADER = "voicebus-state"
AT_HEADER = "voicebus-at"
PARTITION_HEADER = "voicebus-partition"
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
    headers = [
        (STATE_HEADER, state.encode()),
        (AT_HEADER, repr(at).encode()),
        (PARTITION_HEADER, str(partition).encode()),
    ]
    return Record(INDEX_TOPIC, None, key.encode(), value, headers)


#: ``tuple.__new__``: a row made without the named tuple's ``__new__`` (a Python function:
#: twice the cost, for each of the millions of records a restore reads)
_new = tuple.__new__
#: the header values of a state, decoded once
_STATES: dict[bytes, State] = {b"intent": "intent", b"done": "done"}


def _state_headers(
    headers: Sequence[tuple[str, bytes]],
) -> tuple[bytes | None, bytes | None, bytes | None]:
    """The state, time and partition headers (None where missing), in one pass."""
    state = at = home = None
    for name, header in headers:
        if name == STATE_HEADER:
            state = header
        elif name == AT_HEADER:
            at = header
        elif name == PARTITION_HEADER:
            home = header
    return state, at, home


def entry_row(
    partition: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    offset: int = NO_OFFSET,
) -> EntryRow | None:
    """The store row of a ledger record read back (from its headers, else its JSON);
    None for barriers and unreadable ones. An outcome read at a known ``offset`` is kept
    by reference (no bytes: ``store.py``); an intent keeps its bytes (its evidence)."""
    if not key or key == BARRIER_KEY or not value:
        return None
    state, at, _ = _state_headers(headers)
    try:
        if state is not None and at is not None:
            state_text = _STATES.get(state)
            when = float(at)
        else:
            body = json.loads(value)
            state_text = _STATES.get(str(body["state"]).encode())
            when = _epoch(body["at"])
    except (ValueError, KeyError, TypeError):
        return None
    if state_text is None:
        return None
    kept = b"" if state_text == "done" and offset >= 0 else value
    return _new(EntryRow, (key.decode(), partition, state_text, when, kept, offset))


def index_row(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
) -> IndexRow | None:
    """The store row of an index record read back (from its headers, else its JSON);
    None for barriers and unreadable ones."""
    if not key or key == BARRIER_KEY or not value:
        return None
    state, at, home = _state_headers(headers)
    try:
        if state is not None and at is not None and home is not None:
            state_text = _STATES.get(state)
            partition, when = int(home), float(at)
        else:
            body = json.loads(value)
            state_text = _STATES.get(str(body["state"]).encode())
            partition, when = int(body["partition"]), float(body["at"])
    except (ValueError, KeyError, TypeError):
        return None
    if state_text is None:
        return None
    return _new(IndexRow, (key.decode(), partition, state_text, when))


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()
