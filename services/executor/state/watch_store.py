"""The call watch's state in the executor's local store: one compact row per call of the
horizon (:class:`~services.executor.call_watch.CallFacts`: times, account, API, command
id; never the result or status objects), in the same SQLite file as the ledger's, and the
next offset to read per (topic, partition) of the watch's topics in the store's
``positions`` table.

A cache of Kafka, like the rest of the store: without it (a fresh directory, or the file
removed) the watch reads its partitions from ``now - horizon`` again and ends up with the
same rows. A store whose ledger state was discarded for coming from another Kafka cluster
loses these rows too (the cluster id they were read from is kept beside them).

Rows changed while a batch of records is applied stay in memory until the batch's
:meth:`WatchStore.flush`, which writes them with the positions after the batch in one
transaction, so a crash never leaves rows and checkpoints apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any, Final

from services.executor.call_watch import CallFacts
from services.executor.state.store import UPSERT_POSITION, StateStore

#: CallFacts' fields, in the order of the table's columns (``seen_at`` comes last).
COLUMNS: Final = tuple(f.name for f in fields(CallFacts))
_CLUSTER_MARK: Final = "call_watch.cluster_id"
#: Calls per query when a batch's rows are read ahead (below SQLite's 999 variables).
_READ_AHEAD: Final = 500

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS watch_calls (
        call_sid TEXT PRIMARY KEY,
        partition INTEGER NOT NULL,
        accepted_at REAL, account TEXT, api TEXT, command_id TEXT, seen_in TEXT,
        finished_at REAL,
        terminal_at REAL, terminal_account TEXT, terminal_api TEXT, terminal_command_id TEXT,
        finalised_at REAL,
        legs_at REAL,
        seen_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS watch_calls_by_partition ON watch_calls (partition)",
    "CREATE INDEX IF NOT EXISTS watch_calls_by_seen ON watch_calls (seen_at)",
)
_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM watch_calls"  # noqa: S608 - fixed names
_REPLACE: Final = (
    f"INSERT OR REPLACE INTO watch_calls ({', '.join(COLUMNS)}, seen_at) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})"
)


def _row(facts: CallFacts) -> tuple[Any, ...]:
    return (*(getattr(facts, name) for name in COLUMNS), facts.seen_at)


def _facts(row: Sequence[Any]) -> CallFacts:
    return CallFacts(*row)


class WatchStore:
    """A :class:`~services.executor.call_watch.CallHistory` on the executor's
    :class:`StateStore`, with checkpoints of the topics the watch reads."""

    def __init__(self, store: StateStore, topics: Sequence[str]) -> None:
        self.store = store
        self._topics = tuple(topics)
        #: rows changed since the last flush; rows being written by the flush running
        self._dirty: dict[str, CallFacts] = {}
        self._flushing: dict[str, CallFacts] = {}
        #: rows read ahead for the batch being applied (None: the call has no row)
        self._ahead: dict[str, CallFacts | None] = {}
        self._flush_lock = asyncio.Lock()
        cluster, read_from = store.meta("cluster_id"), store.meta(_CLUSTER_MARK)
        with store.transaction() as db:
            for statement in SCHEMA:
                db.execute(statement)
            if cluster != read_from:
                # Rows read from another cluster (or none yet): start empty.
                self._clear(db, None)
                if cluster is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                        (_CLUSTER_MARK, cluster),
                    )

    # -- CallHistory -----------------------------------------------------------------
    def get(self, call_sid: str) -> CallFacts | None:
        facts = self._dirty.get(call_sid) or self._flushing.get(call_sid)
        if facts is not None:
            return facts
        if call_sid in self._ahead:
            return self._ahead[call_sid]
        rows = self.store.query(f"{_SELECT} WHERE call_sid = ?", (call_sid,))
        return _facts(rows[0]) if rows else None

    def read_ahead(self, call_sids: Iterable[str]) -> None:
        """Read the rows of a batch's calls in a few queries rather than one each (until
        the next flush)."""
        wanted = [
            sid
            for sid in set(call_sids)
            if sid not in self._dirty and sid not in self._flushing and sid not in self._ahead
        ]
        for start in range(0, len(wanted), _READ_AHEAD):
            chunk = wanted[start : start + _READ_AHEAD]
            self._ahead.update(dict.fromkeys(chunk))
            marks = ",".join("?" * len(chunk))
            for row in self.store.query(f"{_SELECT} WHERE call_sid IN ({marks})", chunk):
                self._ahead[row[0]] = _facts(row)

    def put(self, facts: CallFacts) -> None:
        self._dirty[facts.call_sid] = facts

    def prune(self, before: float) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM watch_calls WHERE seen_at < ?", (before,))

    # -- checkpoints -----------------------------------------------------------------
    def position(self, topic: str, partition: int) -> int | None:
        return self.store.position(topic, partition)

    async def flush(self, positions: Iterable[tuple[str, int, int]] = ()) -> int:
        """Write the rows changed so far with ``positions`` (topic, partition, next
        offset) in one transaction; how many rows. Rows changed meanwhile wait for the
        next flush."""
        async with self._flush_lock:
            self._ahead = {}
            self._flushing, self._dirty = self._dirty, {}
            rows = [_row(facts) for facts in self._flushing.values()]
            marks = list(positions)
            try:
                if rows or marks:
                    await asyncio.to_thread(self._write, rows, marks)
            except BaseException:
                self._dirty = self._flushing | self._dirty  # tried again next time
                raise
            finally:
                self._flushing = {}
        return len(rows)

    def _write(self, rows: list[tuple[Any, ...]], positions: list[tuple[str, int, int]]) -> None:
        with self.store.transaction() as db:
            db.executemany(_REPLACE, rows)
            db.executemany(UPSERT_POSITION, positions)

    # -- partitions ------------------------------------------------------------------
    def open_rows(
        self,
        partitions: Iterable[int],
        since: float,
        *,
        missing: bool = True,
        finalising: bool = True,
    ) -> list[CallFacts]:
        """Rows of ``partitions`` with something still to do since ``since``: accepted
        and not finished (``missing``), or with a terminal fact and not finalised
        (``finalising``)."""
        wanted = sorted(set(partitions))
        clauses = [
            clause
            for clause, on in (
                ("(accepted_at >= ? AND finished_at IS NULL)", missing),
                ("(terminal_at >= ? AND finalised_at IS NULL)", finalising),
            )
            if on
        ]
        if not wanted or not clauses:
            return []
        marks = ",".join("?" * len(wanted))
        rows = self.store.query(
            f"{_SELECT} WHERE partition IN ({marks}) AND ({' OR '.join(clauses)})",
            (*wanted, *[since] * len(clauses)),
        )
        found = {facts.call_sid: facts for facts in map(_facts, rows)}
        # Changed but not written yet: these are newer than their rows.
        for facts in (*self._flushing.values(), *self._dirty.values()):
            if facts.partition in wanted:
                found[facts.call_sid] = facts
        return list(found.values())

    def rows_in(self, partitions: Iterable[int]) -> int:
        wanted = sorted(set(partitions))
        if not wanted:
            return 0
        marks = ",".join("?" * len(wanted))
        rows = self.store.query(
            f"SELECT COUNT(*) FROM watch_calls WHERE partition IN ({marks})",  # noqa: S608
            wanted,
        )
        return int(rows[0][0])

    def forget(self, partitions: Iterable[int]) -> None:
        """Read these partitions again from Kafka: their rows and checkpoints go (their
        topics were recreated, or their data removed below the checkpoints)."""
        gone = set(partitions)
        self._ahead = {}
        for sid in [sid for sid, facts in self._dirty.items() if facts.partition in gone]:
            del self._dirty[sid]
        with self.store.transaction() as db:
            self._clear(db, gone)

    def _clear(self, db: Any, partitions: set[int] | None) -> None:
        if partitions is None:
            db.execute("DELETE FROM watch_calls")
            db.executemany("DELETE FROM positions WHERE topic = ?", [(t,) for t in self._topics])
            return
        for partition in partitions:
            db.execute("DELETE FROM watch_calls WHERE partition = ?", (partition,))
            db.executemany(
                "DELETE FROM positions WHERE topic = ? AND partition = ?",
                [(t, partition) for t in self._topics],
            )
