"""The executor's local state store: what the ledger says about the commands of the
partitions this replica owns, in SQLite, with a checkpoint per ledger partition.

A cache of Kafka, never the source of truth: deleting the file makes the replica restore
its partitions from ``voicebus.executor.ledger`` (and the command index) again. Rows keep
the ledger record's bytes as they were written; they are parsed only when a command is
looked up, so restoring costs an insert per record, not a model validation.

Two tables of entries, because a command's home is the partition it was consumed from
(its ledger records are written to that ledger partition, which moves with it):

* ``entries``: the ledger records of the ledger partitions this replica restored, keyed
  by ``<command type>:<command id>``, with the record's offset: an intent with its bytes
  (evidence for reconciling), an outcome read back from Kafka by reference only (empty
  bytes; its result is read from the ledger at that offset when a duplicate needs it,
  which is rare, while a restore writes millions of outcomes: their bytes were most of
  what it wrote);
* ``command_index``: for every command of every partition, where it lives and how far it
  got (``intent`` or ``done``): a few dozen bytes per command, so a duplicate published
  under another key (another partition, maybe another replica) is still recognised.

``positions`` holds the next offset to read per (topic, partition), written in the same
SQLite transaction as the rows read below it, so a crash never leaves them apart.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

State = Literal["intent", "done"]

#: The entries' partition index: in the schema, and dropped and built again around a
#: restore into an empty store (``defer_partition_index``).
CREATE_PARTITION_INDEX = "CREATE INDEX IF NOT EXISTS entries_by_partition ON entries (partition)"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    partition INTEGER NOT NULL,
    state TEXT NOT NULL,
    at REAL NOT NULL,
    value BLOB NOT NULL,
    offset INTEGER NOT NULL
);
{CREATE_PARTITION_INDEX};
CREATE TABLE IF NOT EXISTS command_index (
    key TEXT PRIMARY KEY,
    partition INTEGER NOT NULL,
    state TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: An outcome is never undone by an older intent; a newer record replaces an older one.
UPSERT_ENTRY = """
INSERT INTO entries (key, partition, state, at, value, offset) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    partition = excluded.partition, state = excluded.state, at = excluded.at,
    value = excluded.value, offset = excluded.offset
WHERE excluded.state = 'done' OR entries.state = 'intent'
"""
UPSERT_INDEX = """
INSERT INTO command_index (key, partition, state, at) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    partition = excluded.partition, state = excluded.state, at = excluded.at
WHERE excluded.state = 'done' OR command_index.state = 'intent'
"""
UPSERT_POSITION = """
INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset
"""


#: The store's layout; a file of another (older) one is emptied and filled from Kafka again.
SCHEMA_VERSION = 2
#: ``EntryRow.offset`` of an entry whose ledger offset is not known (written by this
#: replica before its transaction's offsets came back: it keeps its bytes).
NO_OFFSET = -1


@dataclass(frozen=True)
class StoredEntry:
    key: str
    partition: int
    state: State
    at: float
    #: the ledger record's bytes; empty for an outcome kept by reference (``offset``)
    value: bytes
    offset: int = NO_OFFSET

    @property
    def by_reference(self) -> bool:
        return not self.value


@dataclass(frozen=True)
class IndexedCommand:
    key: str
    partition: int
    state: State
    at: float


class EntryRow(NamedTuple):
    """One ledger record to apply: its key, home partition, state, time, bytes (empty:
    kept by reference) and ledger offset.

    Tuples, not dataclasses: a restore makes one per record (millions), and
    ``executemany`` binds a tuple's fields as they are."""

    key: str
    partition: int
    state: State
    at: float
    value: bytes
    offset: int = NO_OFFSET


class IndexRow(NamedTuple):
    """One command-index record to apply (a tuple, as :class:`EntryRow`)."""

    key: str
    partition: int
    state: State
    at: float


class StateDirInUse(Exception):
    """Another executor holds the state directory (each replica needs its own)."""


class StateStore:
    """SQLite in WAL mode; one connection for writing, guarded by a lock (restores and
    the ledger's write-behind run in threads), and one for the lookups a command makes
    on the event loop (:meth:`entry`, :meth:`indexed`).

    The lookups have a connection (and lock) of their own because WAL lets a reader
    read while a writer writes: on the writer's connection, a command's lookup waited
    on the event loop for whatever transaction a thread was committing (the state
    follower's batch, the ledger's write-behind; p99 9 ms, up to 20 ms when it
    checkpoints), and the whole loop stopped with it (bench/RESULTS.md "e2e tail").
    A lookup sees every transaction committed before it began, as it would have after
    waiting for the lock; one committing meanwhile is seen by the next lookup (what it
    brings is either already in the ledger's memory, or another replica's index row
    that Kafka could as well have delivered a moment later). An in-memory store
    (``path=None``) has one connection for both."""

    def __init__(self, path: Path | None) -> None:
        """``path=None``: in memory (tests, or a replica told to keep no local state)."""
        self.path = path
        self._flock: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._flock = _lock(path.parent)
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:",
            check_same_thread=False,
            isolation_level=None,
        )
        self._lock = threading.Lock()
        with self._lock:
            # Rows of ~0.5 KiB: 16 KiB pages take a restore's inserts with fewer page
            # splits than the default 4 KiB (only a new file takes it; an old one keeps its).
            self._db.execute("PRAGMA page_size=16384")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA cache_size=-16384")  # 16 MiB of page cache at most
            self._upgrade()
            self._db.executescript(SCHEMA)
        if path is None:
            self._reader, self._read_lock = self._db, self._lock
        else:
            self._reader = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._read_lock = threading.Lock()
            with self._read_lock:
                self._reader.execute("PRAGMA query_only=ON")
                self._reader.execute("PRAGMA cache_size=-4096")

    def _upgrade(self) -> None:
        """A file of an older layout is emptied (the store is a cache of Kafka)."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return
        tables = [
            str(row[0])
            for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        ]
        for table in tables:
            self._db.execute(f'DROP TABLE IF EXISTS "{table}"')
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        if self._reader is not self._db:
            with self._read_lock:
                self._reader.close()
        with self._lock:
            self._db.close()
        if self._flock is not None:
            self._flock.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction on the store's connection, for the tables other parts of the
        executor keep in the same file (the call watch's, ``watch_store.py``)."""
        with self._transaction() as db:
            yield db

    def query(self, sql: str, parameters: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    # -- identity --------------------------------------------------------------------
    def meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def adopt(self, cluster_id: str) -> bool:
        """Keep the state only if it came from this Kafka cluster; otherwise start empty.
        Whether anything was discarded."""
        known = self.meta("cluster_id")
        if known == cluster_id:
            return False
        with self._transaction() as db:
            for table in ("entries", "command_index", "positions", "meta"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            db.execute("INSERT INTO meta (name, value) VALUES ('cluster_id', ?)", (cluster_id,))
        return known is not None

    # -- reading ---------------------------------------------------------------------
    def entry(self, key: str) -> StoredEntry | None:
        with self._read_lock:
            row = self._reader.execute(
                "SELECT key, partition, state, at, value, offset FROM entries WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else StoredEntry(*row)

    def indexed(self, key: str) -> IndexedCommand | None:
        with self._read_lock:
            row = self._reader.execute(
                "SELECT key, partition, state, at FROM command_index WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else IndexedCommand(row[0], row[1], row[2], row[3])

    def position(self, topic: str, partition: int) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT next_offset FROM positions WHERE topic = ? AND partition = ?",
                (topic, partition),
            ).fetchone()
        return None if row is None else int(row[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            entries = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            indexed = self._db.execute("SELECT COUNT(*) FROM command_index").fetchone()[0]
        return {"entries": int(entries), "indexed": int(indexed)}

    def entries_in(self, partitions: Iterable[int]) -> int:
        wanted = sorted(set(partitions))
        if not wanted:
            return 0
        marks = ",".join("?" * len(wanted))
        with self._lock:
            row = self._db.execute(
                f"SELECT COUNT(*) FROM entries WHERE partition IN ({marks})",  # noqa: S608
                wanted,
            ).fetchone()
        return int(row[0])

    def partitions_held(self) -> set[int]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT partition FROM entries").fetchall()
        return {int(r[0]) for r in rows}

    # -- writing ---------------------------------------------------------------------
    def apply(
        self,
        *,
        entries: Sequence[EntryRow] = (),
        index: Sequence[IndexRow] = (),
        positions: Iterable[tuple[str, int, int]] = (),
    ) -> None:
        """Rows read from (or written to) Kafka and the positions after them, atomically."""
        # In key order: the B-trees are walked from one insertion point to the next
        # instead of jumping about (a restore's batches come partition by partition, in
        # offset order). Stable: a key's records keep their order (a newer one replaces).
        if len(entries) > 1:
            entries = sorted(entries, key=_by_key)
        if len(index) > 1:
            index = sorted(index, key=_by_key)
        with self._transaction() as db:
            if entries:
                db.executemany(UPSERT_ENTRY, entries)
            if index:
                db.executemany(UPSERT_INDEX, index)
            db.executemany(UPSERT_POSITION, list(positions))

    def defer_partition_index(self) -> bool:
        """Before a restore into an empty ``entries`` table: its partition index dropped,
        to be built once by :meth:`build_partition_index` at the end instead of updated on
        every insert (a million rows: one B-tree fewer written per row). Whether it was.

        Nothing reads it meanwhile (``/readyz`` does not count during a restore, and the
        queries that use it still answer, by a scan); a process that dies before the end
        gets it back from ``SCHEMA`` when it opens the store again. Rows and positions
        are written together whatever the indexes: the checkpoint claims nothing more."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is not None:
                return False
            self._db.execute("DROP INDEX IF EXISTS entries_by_partition")
        return True

    def build_partition_index(self) -> None:
        with self._lock:
            self._db.execute(CREATE_PARTITION_INDEX)

    def forget_positions(self, topic: str, partitions: Iterable[int]) -> None:
        """Read these partitions from their beginning next time (their data was removed
        from Kafka below our checkpoint, or the topic was recreated)."""
        with self._transaction() as db:
            for partition in partitions:
                db.execute(
                    "DELETE FROM positions WHERE topic = ? AND partition = ?", (topic, partition)
                )
                if topic.endswith(".ledger"):
                    db.execute("DELETE FROM entries WHERE partition = ?", (partition,))

    def expire(self, before: float) -> int:
        """Drop outcomes older than ``before`` (the ledger's retention); how many rows."""
        with self._transaction() as db:
            gone = db.execute("DELETE FROM entries WHERE state = 'done' AND at < ?", (before,))
            indexed = db.execute(
                "DELETE FROM command_index WHERE state = 'done' AND at < ?", (before,)
            )
        return int(gone.rowcount) + int(indexed.rowcount)


def _by_key(row: EntryRow | IndexRow) -> str:
    return row.key


def _lock(directory: Path) -> IO[str]:
    """An exclusive lock on ``directory``, held while the store is open."""
    handle = (directory / "state.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StateDirInUse(
            f"EXECUTOR_STATE_DIR={directory} is in use by {holder}: give every executor "
            "replica a directory of its own"
        ) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def open_store(directory: Path) -> StateStore:
    """The store in ``directory`` (created if missing), locked for this process."""
    return StateStore(directory / "state.db")
