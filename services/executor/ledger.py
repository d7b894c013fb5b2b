"""The command ledger: a durable record of what the executor intended and what happened.

Exactly-once *effect* on top of at-least-once delivery. Before the first request with an
effect (placing a call, creating or changing a leg) the executor records an ``intent``;
when the command has an outcome it records ``done`` with the result. Both are written to
Kafka (``voicebus.executor.ledger``, keyed by command) and acknowledged before going on.

    command ──► ledger says done?     ──► re-emit the recorded result, no request
            ──► ledger says intent?   ──► in doubt: reconcile with Exotel, never resend blindly
            ──► nothing recorded      ──► record intent ──► Exotel ──► record done ──► result

Every replica reads the whole ledger at start and follows it, so a command redelivered to
another replica after a crash or rebalance finds its record there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field

from contracts.commands import CommandType
from contracts.results import CommandResult

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

    @property
    def key(self) -> str:
        return ledger_key(self.command_type, self.command_id)


def ledger_key(command_type: str, command_id: str) -> str:
    """Idempotency is per command type: ``call.connect`` id X and ``leg.hangup`` id X differ."""
    return f"{command_type}:{command_id}"


class LedgerLog(Protocol):
    """Where entries are made durable (Kafka in production)."""

    async def append(self, entry: LedgerEntry) -> None: ...


class CommandLedger:
    """What this replica knows of every command's intent and outcome."""

    def __init__(
        self,
        log_: LedgerLog | None = None,
        *,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._log = log_
        self._entries: dict[str, LedgerEntry] = {}
        self._retention = retention
        self._applied = 0

    def attach(self, log_: LedgerLog) -> None:
        self._log = log_

    def lookup(self, command_type: str, command_id: str) -> LedgerEntry | None:
        return self._entries.get(ledger_key(command_type, command_id))

    def __len__(self) -> int:
        return len(self._entries)

    def apply(self, entry: LedgerEntry) -> None:
        """Take an entry read back from the log (ours or another replica's)."""
        current = self._entries.get(entry.key)
        if current is not None and current.state == "done" and entry.state == "intent":
            return  # an outcome is never undone by an older intent
        self._entries[entry.key] = entry
        self._applied += 1
        if self._applied % 10_000 == 0:
            self._prune()

    def _prune(self) -> None:
        horizon = datetime.now(UTC) - self._retention
        stale = [k for k, e in self._entries.items() if e.state == "done" and e.at < horizon]
        for key in stale:
            del self._entries[key]

    async def intend(
        self,
        *,
        command_id: str,
        command_type: CommandType,
        account: str,
        evidence: Mapping[str, str],
    ) -> LedgerEntry:
        entry = LedgerEntry(
            command_id=command_id,
            command_type=command_type,
            state="intent",
            account=account,
            at=datetime.now(UTC),
            evidence=dict(evidence),
        )
        await self._write(entry)
        return entry

    async def complete(self, result: CommandResult) -> None:
        previous = self.lookup(result.command_type, result.command_id)
        entry = LedgerEntry(
            command_id=result.command_id,
            command_type=result.command_type,
            state="done",
            account=result.account,
            at=datetime.now(UTC),
            evidence=previous.evidence if previous else {},
            result=result,
        )
        await self._write(entry)

    async def _write(self, entry: LedgerEntry) -> None:
        if self._log is not None:
            await self._log.append(entry)
        self.apply(entry)
