"""The ledger makes effects exactly-once: intents before effects, outcomes remembered.

(How in-doubt commands are reconciled against Exotel is told per command type in
test_connect.py, test_lwb.py and test_hangup.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from contracts.commands import CallConnect
from contracts.results import CommandResult
from services.executor.ledger import CommandLedger, LedgerEntry
from tests.support.exotel import FakeExotel, executor, intent_entry


@dataclass
class FakeLog:
    entries: list[LedgerEntry] = field(default_factory=list)

    async def append(self, entry: LedgerEntry) -> None:
        self.entries.append(entry)


CONNECT = CallConnect.model_validate(
    {"command_id": "c-1", "from": "+919876543210", "to": "+919812345678", "caller_id": "0804711"}
)


def intent() -> LedgerEntry:
    return intent_entry("call.connect", {"api": "v1"}, at=datetime.now(UTC) - timedelta(seconds=5))


async def test_no_intent_is_recorded_when_nothing_is_sent() -> None:
    log = FakeLog()
    invalid = CallConnect.model_validate(
        {**CONNECT.model_dump(by_alias=True), "streaming": {"url": "wss://x"}}
    )
    result = await executor(FakeExotel(), journal=CommandLedger(log)).execute(
        invalid, command_type="call.connect"
    )
    assert result.outcome == "rejected"
    assert log.entries == []


async def test_an_intent_is_recorded_before_the_call_is_placed_and_the_outcome_after() -> None:
    log, exotel = FakeLog(), FakeExotel()
    ledger = CommandLedger(log)
    result = await executor(exotel, journal=ledger).execute(CONNECT, command_type="call.connect")
    assert result.outcome == "accepted"
    assert [e.state for e in log.entries] == ["intent"]
    assert log.entries[0].evidence == {"from": "+919876543210", "to": "+919812345678", "api": "v1"}
    await ledger.complete(result)
    done = ledger.lookup("call.connect", "c-1")
    assert done is not None
    assert done.state == "done"
    assert done.result == result
    assert done.evidence == log.entries[0].evidence


def test_an_outcome_is_never_undone_by_an_older_intent_read_later() -> None:
    ledger = CommandLedger()
    now = datetime.now(UTC)
    done = LedgerEntry(
        command_id="c-1",
        command_type="call.connect",
        state="done",
        account="default",
        at=now,
        result=CommandResult(
            command_id="c-1",
            command_type="call.connect",
            outcome="accepted",
            account="default",
            attempts=1,
            completed_at=now,
        ),
    )
    ledger.apply(done)
    ledger.apply(intent())
    entry = ledger.lookup("call.connect", "c-1")
    assert entry is not None
    assert entry.state == "done"


def test_idempotency_keys_are_scoped_by_command_type() -> None:
    ledger = CommandLedger()
    ledger.apply(intent())
    assert ledger.lookup("call.connect", "c-1") is not None
    assert ledger.lookup("leg.hangup", "c-1") is None
