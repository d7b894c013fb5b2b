"""The local state store: rows applied with their checkpoints, outcomes never undone by an
older intent, state of another Kafka cluster discarded, one replica per directory."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from services.executor.state.records import entry_row, index_record, index_row, ledger_record
from services.executor.state.store import (
    EntryRow,
    IndexedCommand,
    IndexRow,
    StateDirInUse,
    StateStore,
    StoredEntry,
    open_store,
)


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


def test_an_index_record_is_filed_from_its_headers_without_parsing_its_json() -> None:
    record = index_record(key="call.connect:c-1", partition=3, state="done", at=7.5)
    assert dict(record.headers)["voicebus-partition"] == b"3"
    filed = index_row(record.key, b"not json", record.headers)
    assert filed == IndexRow("call.connect:c-1", 3, "done", 7.5)


def test_index_records_written_before_the_headers_are_read_from_their_json() -> None:
    record = index_record(key="call.connect:c-1", partition=3, state="intent", at=7.5)
    assert index_row(record.key, record.value) == IndexRow("call.connect:c-1", 3, "intent", 7.5)


def test_a_ledger_record_written_before_the_headers_is_read_from_its_json() -> None:
    value = b'{"state": "done", "at": "2026-12-02T06:00:00+00:00"}'
    filed = entry_row(3, b"call.connect:c-1", value, [])
    assert filed is not None
    assert (filed.state, filed.at) == ("done", 1796191200.0)


@pytest.mark.parametrize(
    ("state", "at", "partition"),
    [(b"maybe", b"1.0", b"3"), (b"done", b"soon", b"3"), (b"done", b"1.0", b"three")],
    ids=["a state neither intent nor done", "a time that is no number", "no partition number"],
)
def test_records_whose_headers_do_not_read_are_skipped(
    state: bytes, at: bytes, partition: bytes
) -> None:
    headers = [("voicebus-state", state), ("voicebus-at", at), ("voicebus-partition", partition)]
    assert index_row(b"call.connect:c-1", b"{}", headers) is None
    if partition.isdigit():  # a ledger record has no partition header
        assert entry_row(3, b"call.connect:c-1", b"{}", headers[:2]) is None


def test_rows_are_stored_as_they_are_read_back() -> None:
    store = StateStore(None)
    ledger = ledger_record(key="call.connect:c-1", partition=3, state="done", at=7.5, value=b"v")
    index = index_record(key="call.connect:c-2", partition=5, state="intent", at=8.5)
    filed_entry = entry_row(3, ledger.key, ledger.value, ledger.headers)
    filed_index = index_row(index.key, index.value, index.headers)
    assert filed_entry is not None
    assert filed_index is not None
    store.apply(entries=[filed_entry], index=[filed_index])
    assert store.entry("call.connect:c-1") == StoredEntry("call.connect:c-1", 3, "done", 7.5, b"v")
    assert store.indexed("call.connect:c-2") == IndexedCommand("call.connect:c-2", 5, "intent", 8.5)


def test_a_batch_is_applied_in_key_order_and_a_keys_records_keep_theirs() -> None:
    """Rows are sorted by key before they are written; records of one key stay in the
    order they were read (a newer intent replaces an older one, an outcome stays)."""
    store = StateStore(None)
    batch = [
        EntryRow("call.connect:c-9", 1, "intent", 1.0, b"i9"),
        EntryRow("call.connect:c-1", 1, "intent", 1.0, b"old"),
        EntryRow("call.connect:c-5", 1, "done", 2.0, b"d5"),
        EntryRow("call.connect:c-1", 1, "intent", 2.0, b"new"),
        EntryRow("call.connect:c-5", 1, "intent", 3.0, b"late intent"),
        EntryRow("call.connect:c-9", 1, "done", 4.0, b"d9"),
    ]
    store.apply(
        entries=batch,
        index=[
            IndexRow("call.connect:c-7", 2, "intent", 1.0),
            IndexRow("call.connect:c-7", 2, "done", 2.0),
        ],
    )
    values = {k: store.entry(f"call.connect:{k}") for k in ("c-1", "c-5", "c-9")}
    assert {k: (v.state, v.value) for k, v in values.items() if v} == {
        "c-1": ("intent", b"new"),
        "c-5": ("done", b"d5"),
        "c-9": ("done", b"d9"),
    }
    assert store.indexed("call.connect:c-7") == IndexedCommand("call.connect:c-7", 2, "done", 2.0)


def _indexes(store: StateStore) -> set[str]:
    return {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_restore_into_an_empty_store_builds_the_partition_index_at_its_end() -> None:
    store = StateStore(None)
    assert "entries_by_partition" in _indexes(store)
    assert store.defer_partition_index() is True
    assert "entries_by_partition" not in _indexes(store)
    store.apply(entries=[row("done", partition=3)], positions=[("voicebus.executor.ledger", 3, 1)])
    assert store.entries_in([3]) == 1  # still answered meanwhile (by a scan)
    store.build_partition_index()
    assert "entries_by_partition" in _indexes(store)
    assert store.entries_in([3]) == 1
    # A store holding entries keeps its index through a restore.
    assert store.defer_partition_index() is False
    assert "entries_by_partition" in _indexes(store)


def test_a_store_left_without_its_partition_index_gets_it_back_when_opened(
    tmp_path: Path,
) -> None:
    """A process that died in a restore (index deferred): the next one opens the store
    with its index, and the rows and checkpoint written before the crash."""
    store = open_store(tmp_path)
    store.defer_partition_index()
    store.apply(entries=[row("done")], positions=[("voicebus.executor.ledger", 3, 7)])
    store.close()
    again = open_store(tmp_path)
    assert "entries_by_partition" in _indexes(again)
    assert again.position("voicebus.executor.ledger", 3) == 7
    assert again.entry("call.connect:c-1") is not None
    again.close()


def test_a_store_of_an_older_layout_is_emptied_and_read_from_kafka_again(tmp_path: Path) -> None:
    """Before outcomes were kept by reference, entries had no offset column."""
    old = sqlite3.connect(tmp_path / "state.db")
    old.executescript(
        "CREATE TABLE entries (key TEXT PRIMARY KEY, partition INTEGER, state TEXT,"
        " at REAL, value BLOB);"
        "CREATE TABLE positions (topic TEXT, partition INTEGER, next_offset INTEGER,"
        " PRIMARY KEY (topic, partition));"
        "INSERT INTO entries VALUES ('call.connect:c-1', 3, 'done', 1.0, x'7b7d');"
        "INSERT INTO positions VALUES ('voicebus.executor.ledger', 3, 99);"
    )
    old.commit()
    old.close()
    store = open_store(tmp_path)
    assert store.entry("call.connect:c-1") is None
    assert store.position("voicebus.executor.ledger", 3) is None, "read from the beginning"
    store.apply(entries=[EntryRow("call.connect:c-2", 3, "done", 2.0, b"", 5)])
    assert store.entry("call.connect:c-2") == StoredEntry(
        "call.connect:c-2", 3, "done", 2.0, b"", 5
    )
    store.close()
    again = open_store(tmp_path)
    assert again.entry("call.connect:c-2") is not None, "the new layout is kept"
    again.close()


def test_a_lookup_does_not_wait_for_a_transaction_a_thread_is_committing(
    tmp_path: Path,
) -> None:
    """The event loop's lookups read beside the writer (WAL): a command's lookup sees what
    was committed, while a thread's transaction (the follower's batch, the write-behind)
    is still open, instead of stopping the loop until it commits."""
    store = open_store(tmp_path)
    store.apply(
        entries=[row("done")],
        index=[IndexRow("call.connect:c-1", 3, "done", 1.0)],
    )
    inside, release = threading.Event(), threading.Event()

    def slow_commit() -> None:
        with store.transaction() as db:
            db.execute(
                "INSERT INTO entries (key, partition, state, at, value, offset) "
                "VALUES ('call.connect:c-2', 3, 'intent', 1.0, x'00', -1)"
            )
            inside.set()
            release.wait(10)

    writer = threading.Thread(target=slow_commit)
    writer.start()
    try:
        assert inside.wait(5)
        found: list[object] = []
        reader = threading.Thread(
            target=lambda: found.extend(
                [
                    store.entry("call.connect:c-1"),
                    store.indexed("call.connect:c-1"),
                    store.entry("call.connect:c-2"),
                ]
            )
        )
        reader.start()
        reader.join(2)
        assert not reader.is_alive(), "the lookup waited for the writer's transaction"
        stored, indexed, uncommitted = found
        assert isinstance(stored, StoredEntry)
        assert stored.state == "done"
        assert isinstance(indexed, IndexedCommand)
        assert indexed.partition == 3
        assert uncommitted is None  # not committed yet: not seen
    finally:
        release.set()
        writer.join(5)
    # committed: the next lookup sees it
    later = store.entry("call.connect:c-2")
    assert later is not None
    assert later.state == "intent"
    store.close()
