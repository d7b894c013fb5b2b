"""The local state store: rows applied with their checkpoints, outcomes never undone by an
older intent, state of another Kafka cluster discarded, one replica per directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.executor.state.records import entry_row, index_record, index_row, ledger_record
from services.executor.state.store import EntryRow, StateDirInUse, StateStore, open_store


def row(state: str, at: float = 1.0, partition: int = 3) -> EntryRow:
    return EntryRow("call.connect:c-1", partition, state, at, state.encode())  # type: ignore[arg-type]


def test_rows_and_their_checkpoint_are_applied_together() -> None:
    store = StateStore(None)
    store.apply(entries=[row("intent")], positions=[("voicebus.executor.ledger", 3, 11)])
    assert store.position("voicebus.executor.ledger", 3) == 11
    stored = store.entry("call.connect:c-1")
    assert stored is not None
    assert (stored.partition, stored.state) == (3, "intent")


def test_an_outcome_is_never_undone_by_an_older_intent_read_later() -> None:
    store = StateStore(None)
    store.apply(entries=[row("done", at=2.0)])
    store.apply(entries=[row("intent", at=1.0)])
    stored = store.entry("call.connect:c-1")
    assert stored is not None
    assert stored.state == "done"


def test_state_from_another_kafka_cluster_is_discarded() -> None:
    store = StateStore(None)
    assert store.adopt("cluster-a") is False
    store.apply(entries=[row("done")], positions=[("voicebus.executor.ledger", 3, 5)])
    assert store.adopt("cluster-a") is False
    assert store.entry("call.connect:c-1") is not None
    assert store.adopt("cluster-b") is True
    assert store.entry("call.connect:c-1") is None
    assert store.position("voicebus.executor.ledger", 3) is None


def test_two_executors_cannot_share_a_state_directory(tmp_path: Path) -> None:
    first = open_store(tmp_path)
    with pytest.raises(StateDirInUse, match="EXECUTOR_STATE_DIR"):
        open_store(tmp_path)
    first.close()
    open_store(tmp_path).close()  # free again once the first closed


def test_a_ledger_record_is_filed_from_its_headers_without_parsing_its_json() -> None:
    record = ledger_record(key="call.connect:c-1", partition=3, state="done", at=7.5, value=b"x")
    filed = entry_row(3, record.key, record.value, record.headers)
    assert filed == EntryRow("call.connect:c-1", 3, "done", 7.5, b"x")


def test_barriers_and_unreadable_records_are_skipped() -> None:
    assert entry_row(0, b"__barrier__", b"abc", []) is None
    assert entry_row(0, b"call.connect:x", b"not json", []) is None
    index = index_record(key="call.connect:c-1", partition=3, state="intent", at=1.0)
    assert index_row(index.key, index.value) is not None
    assert index_row(b"call.connect:c-1", b"{}") is None
