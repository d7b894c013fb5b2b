"""The command ledger: a durable record of what the executor intended and what happened.

Exactly-once *effect* on top of at-least-once delivery. Before the first request with an
effect (placing a call, creating or changing a leg) the executor records an ``intent``;
when the command has an outcome it records ``done`` with the result. Both go to
``voicebus.executor.ledger`` (keyed by command) on the partition the command was consumed
from, so a ledger partition moves with its command partitions, and to the command index
(``voicebus.executor.command-index``: where each command lives and how far it got).

    command ──► ledger says done?     ──► re-emit the recorded result, no request
            ──► ledger says intent?   ──► in doubt: reconcile with Exotel, never resend blindly
            ──► nothing recorded      ──► record intent ──► Exotel ──► record done ──► result

A replica restores the ledger partitions of the partitions it is assigned (and the small
index) into its local store before their commands run (services/executor/state/), so a
command redelivered after a crash or a rebalance finds its record there, and a duplicate
published under another key is found through the index.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.commands import CommandType
from contracts.results import CommandResult
from services.executor.state.lanes import WriteLane
from services.executor.state.records import Record, index_record, ledger_record
from services.executor.state.store import EntryRow, IndexRow, StateStore, StoredEntry

log = structlog.get_logger(__name__)


class LedgerEntry(BaseModel):
    """One record of the ledger topic."""

    model_config = ConfigDict(frozen=True)

    command_id: str
    command_type: CommandType
    state: Literal["intent", "done"]
    account: str
    at: datetime
    evidence: dict[str, str] = Field(
        default_factory=dict, description="What reconciliation needs (numbers, sids, mode)."
    )
    result: CommandResult | None = None
    source: str | None = Field(
        default=None,
        description="The command record whose outcome this is: topic/partition/offset.",
    )

    @property
    def key(self) -> str:
        return ledger_key(self.command_type, self.command_id)


def record_source(topic: str, partition: int, offset: int) -> str:
    """Names one command record: its outcome and a redelivery of it share this."""
    return f"{topic}/{partition}/{offset}"


def ledger_key(command_type: str, command_id: str) -> str:
    """Idempotency is per command type: ``call.connect`` id X and ``leg.hangup`` id X differ."""
    return f"{command_type}:{command_id}"


class Lanes(Protocol):
    """The write lane of each owned partition (services/executor/state/lanes.py)."""

    def lane(self, partition: int) -> WriteLane: ...

    async def acquired(self, partition: int, within: float) -> WriteLane:
        """The lane once the partition's state is restored."""


#: Reads one entry of another partition's ledger from Kafka (a duplicate published under
#: another key): (partition, key, written at) -> the record's bytes, if found.
FetchEntry = Callable[[int, str, float], Awaitable[bytes | None]]
#: Reads the ledger record a stored outcome refers to: (partition, offset, key, written
#: at) -> the latest record of that key from that offset on, None if there is none; raises
#: when Kafka does not answer.
FetchAt = Callable[[int, int, str, float], Awaitable[bytes | None]]
#: How often a reference is tried while Kafka does not answer, and the wait between.
FETCH_ATTEMPTS = 10
FETCH_BACKOFF_SECONDS = 0.5


@dataclass(frozen=True)
class PartitionJournal:
    """The ledger's ``intend`` for the commands of one partition (an ``EffectJournal``)."""

    ledger: CommandLedger
    partition: int

    async def intend(
        self,
        *,
        command_id: str,
        command_type: CommandType,
        account: str,
        evidence: Mapping[str, str],
    ) -> LedgerEntry:
        return await self.ledger.intend(
            partition=self.partition,
            command_id=command_id,
            command_type=command_type,
            account=account,
            evidence=evidence,
        )


#: How long the ledger's own durable entries wait in memory to be written to the local
#: store together (see ``CommandLedger._remember``).
WRITE_BEHIND_SECONDS = 0.05


class CommandLedger:
    """What the executor intended and what happened, per command.

    Written through the command's partition lane (the ledger partition is the command's
    own partition number), remembered in the local store once durable. A command's
    outcome is visible to lookups as soon as it is handed to the lane (``_pending``),
    and goes to the store when its transaction committed: first to ``_unwritten``
    (found by lookups from then on), then, with whatever else became durable meanwhile,
    to the store in one SQLite transaction in a worker thread (``_write_behind``).
    """

    def __init__(
        self,
        store: StateStore,
        lanes: Lanes,
        *,
        fetch_foreign: FetchEntry | None = None,
        fetch_at: FetchAt | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        write_behind_seconds: float = WRITE_BEHIND_SECONDS,
    ) -> None:
        self._store = store
        self._lanes = lanes
        self._fetch_foreign = fetch_foreign
        self._fetch_at = fetch_at
        self._clock = clock
        self._pending: dict[str, LedgerEntry] = {}
        self._pending_home: dict[str, int] = {}
        #: durable entries of ours on their way to the store: key -> (entry, partition)
        self._unwritten: dict[str, tuple[LedgerEntry, int]] = {}
        self._write_behind_seconds = write_behind_seconds
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    def journal(self, partition: int) -> PartitionJournal:
        return PartitionJournal(self, partition)

    def _local(self, key: str) -> LedgerEntry | StoredEntry | None:
        """The latest entry this replica holds: handed to a lane, durable but not yet in
        the store (``_unwritten``), or in the store (an outcome read back from Kafka is
        kept there by reference: a ``StoredEntry`` without bytes, see ``_read_back``)."""
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        unwritten = self._unwritten.get(key)
        if unwritten is not None:
            return unwritten[0]
        stored = self._store.entry(key)
        if stored is None or stored.by_reference:
            return stored
        return _parse(stored.value)

    async def _read_back(self, stored: StoredEntry) -> LedgerEntry | None:
        """The outcome a stored reference names, read from its ledger partition.

        Kafka not answering is retried for a while, then raised (the command's offset
        stays uncommitted; it runs again later). Where the record cannot be had at all
        (no reader configured, or nothing of the key from that offset on), the entry is
        still known to be done: it comes back without its result, so the command is
        reconciled as one in doubt, never sent again blindly."""
        raw: bytes | None = None
        if self._fetch_at is not None:
            for attempt in range(1, FETCH_ATTEMPTS + 1):
                try:
                    raw = await self._fetch_at(
                        stored.partition, stored.offset, stored.key, stored.at
                    )
                    break
                except Exception as exc:
                    if attempt == FETCH_ATTEMPTS:
                        raise
                    log.warning("ledger.read_back_retry", attempt=attempt, error=repr(exc))
                    await asyncio.sleep(FETCH_BACKOFF_SECONDS * attempt)
        found = _parse(raw) if raw is not None else None
        if found is not None and found.key == stored.key:
            return found
        log.warning("ledger.outcome_not_read_back", key=stored.key, offset=stored.offset)
        command_type, _, command_id = stored.key.partition(":")
        return LedgerEntry(
            command_id=command_id,
            command_type=command_type,  # type: ignore[arg-type]
            state=stored.state,
            account="",
            at=datetime.fromtimestamp(stored.at, UTC),
        )

    async def find(
        self, command_type: str, command_id: str, *, partition: int
    ) -> LedgerEntry | None:
        """The latest entry of a command: in this partition's state, else (a duplicate
        published under another key) from the partition the command index names."""
        key = ledger_key(command_type, command_id)
        local = self._local(key)
        if isinstance(local, StoredEntry):
            return await self._read_back(local)
        if local is not None:
            return local
        indexed = self._store.indexed(key)
        if indexed is None or indexed.partition == partition or self._fetch_foreign is None:
            return None
        raw = await self._fetch_foreign(indexed.partition, key, indexed.at)
        found = _parse(raw) if raw is not None else None
        if found is not None:
            log.info(
                "ledger.found_in_another_partition",
                command_id=command_id,
                home=indexed.partition,
                state=found.state,
            )
        return found

    async def intend(
        self,
        *,
        partition: int,
        command_id: str,
        command_type: CommandType,
        account: str,
        evidence: Mapping[str, str],
        facts: Sequence[Record] = (),
    ) -> LedgerEntry:
        """Durable before it returns: the request with an effect comes after this.

        ``facts`` (a backfill's page of ``call.details`` before the checkpoint that
        follows it) are written first, in the same write: one transaction where the
        broker has them."""
        entry = LedgerEntry(
            command_id=command_id,
            command_type=command_type,
            state="intent",
            account=account,
            at=self._clock(),
            evidence=dict(evidence),
        )
        records = [*facts, *_records(entry, partition)]
        await self._lanes.lane(partition).write_now(records)
        self._remember(entry, partition)
        return entry

    async def complete(
        self,
        partition: int,
        result: CommandResult,
        *,
        facts: Sequence[Record] = (),
        before: Sequence[Record] = (),
        source: str | None = None,
    ) -> LedgerEntry:
        """The outcome, with the facts that go with it (the result): one transaction.
        ``source`` names the command record (see :func:`record_source`).

        ``before``: facts written ahead of the outcome (a lookup's ``call.details``), so
        that without transactions they are never missing once the outcome is recorded:
        a redelivered command whose outcome is recorded only gets its result again."""
        key = ledger_key(result.command_type, result.command_id)
        previous = self._local(key)
        entry = LedgerEntry(
            command_id=result.command_id,
            command_type=result.command_type,
            state="done",
            account=result.account,
            at=self._clock(),
            # (an outcome kept by reference has no evidence to carry: it is done already)
            evidence=previous.evidence if isinstance(previous, LedgerEntry) else {},
            result=result,
            source=source,
        )
        self._pending[key] = entry
        self._pending_home[key] = partition

        def durable() -> None:
            self._remember(entry, partition)
            if self._pending.get(key) is entry:
                del self._pending[key]
                del self._pending_home[key]

        await self._lanes.lane(partition).finish(
            [*before, *_records(entry, partition), *facts], on_durable=durable
        )
        return entry

    def release(self, partitions: set[int]) -> None:
        """Partitions given away: outcomes of theirs not committed by us are the next
        owner's to decide (their offsets were not committed either)."""
        for key in [k for k, p in self._pending_home.items() if p in partitions]:
            self._pending.pop(key, None)
            self._pending_home.pop(key, None)

    def _remember(self, entry: LedgerEntry, partition: int) -> None:
        """A durable entry of ours, for the local store.

        Held in memory (lookups find it there at once) and written within
        ``write_behind_seconds`` together with the others of that time, in one SQLite
        transaction in a worker thread: written one by one on the event loop, two per
        command, these writes (and the waits for the store's lock while the state
        follower applied a batch in its thread) were a tenth of the executor's CPU
        samples. The store is a cache of Kafka either way: its positions are only
        written with the rows read back below them (``StateReader``), so an entry not
        yet written when the process dies is read back from the ledger topic."""
        key = entry.key
        held = self._unwritten.get(key)
        if held is not None and held[0].state == "done" and entry.state == "intent":
            return  # as in the store: an outcome is never undone by an older intent
        self._unwritten[key] = (entry, partition)
        if not self._closed:
            self._writing()

    async def _write_behind(self) -> None:
        """Write what is unwritten, a batch every ``write_behind_seconds``, until nothing
        is left; an entry stays in memory until a write of it succeeded."""
        failures = 0
        while self._unwritten:
            await asyncio.sleep(self._write_behind_seconds * (1 + min(failures, 100)))
            if self._closed:
                return
            batch = dict(self._unwritten)
            entries = [_entry_row(entry, partition) for entry, partition in batch.values()]
            index = [IndexRow(row.key, row.partition, row.state, row.at) for row in entries]
            try:
                await asyncio.to_thread(self._store.apply, entries=entries, index=index)
            except Exception as exc:  # noqa: BLE001 - kept in memory, tried again
                failures += 1
                log.warning("ledger.store_write_failed", entries=len(entries), error=repr(exc))
                continue
            failures = 0
            for key, held in batch.items():
                if self._unwritten.get(key) is held:
                    del self._unwritten[key]

    async def flush(self) -> None:
        """Until every durable entry of ours so far is in the store."""
        while self._unwritten and not self._closed:
            await asyncio.shield(self._writing())

    def _writing(self) -> asyncio.Task[None]:
        """The write-behind task, started if none runs."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_behind(), name="ledger-write-behind"
            )
        return self._writer

    async def close(self) -> None:
        """Before the store closes: what is unwritten is written, then nothing more."""
        with contextlib.suppress(Exception):
            await self.flush()
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer

    def expire(self, retention: timedelta = timedelta(days=7)) -> int:
        return self._store.expire((self._clock() - retention).timestamp())


def _parse(value: bytes) -> LedgerEntry | None:
    try:
        return LedgerEntry.model_validate_json(value)
    except ValidationError as exc:
        log.warning("ledger.unreadable_entry", error=str(exc)[:200])
        return None


def _entry_row(entry: LedgerEntry, partition: int) -> EntryRow:
    return EntryRow(
        entry.key, partition, entry.state, entry.at.timestamp(), entry.model_dump_json().encode()
    )


def _records(entry: LedgerEntry, partition: int) -> list[Record]:
    at = entry.at.timestamp()
    return [
        ledger_record(
            key=entry.key,
            partition=partition,
            state=entry.state,
            at=at,
            value=entry.model_dump_json().encode(),
        ),
        index_record(key=entry.key, partition=partition, state=entry.state, at=at),
    ]
