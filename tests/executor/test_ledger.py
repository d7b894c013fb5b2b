"""The ledger makes effects exactly-once: intents before effects, outcomes remembered, on
the partition the command came from, found again by a duplicate under another key.

(How in-doubt commands are reconciled against Exotel is told per command type in
test_connect.py, test_lwb.py and test_hangup.py.)"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.commands import CallConnect
from contracts.results import CommandResult
from services.executor.ledger import CommandLedger, LedgerEntry, record_source
from services.executor.state.records import INDEX_TOPIC, LEDGER_TOPIC
from services.executor.state.store import EntryRow, IndexRow, StateStore
from tests.support.exotel import FakeExotel, executor
from tests.support.lanes import RecordingLanes

CONNECT = CallConnect.model_validate(
    {"command_id": "c-1", "from": "+919876543210", "to": "+919812345678", "caller_id": "0804711"}
)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def accepted(command_id: str = "c-1") -> CommandResult:
    return CommandResult(
        command_id=command_id,
        command_type="call.connect",
        outcome="accepted",
        call_sid="sid-1",
        account="default",
        attempts=1,
        completed_at=NOW,
    )


def new_ledger(
    lanes: RecordingLanes | None = None, store: StateStore | None = None, **kwargs: object
) -> tuple[CommandLedger, RecordingLanes, StateStore]:
    lanes = lanes or RecordingLanes()
    store = store or StateStore(None)
    return CommandLedger(store, lanes, clock=lambda: NOW, **kwargs), lanes, store  # type: ignore[arg-type]


async def test_no_intent_is_recorded_when_nothing_is_sent() -> None:
    ledger, lanes, _ = new_ledger()
    invalid = CallConnect.model_validate(
        {**CONNECT.model_dump(by_alias=True), "streaming": {"url": "wss://x"}}
    )
    result = await executor(FakeExotel(), journal=ledger.journal(3)).execute(
        invalid, command_type="call.connect"
    )
    assert result.outcome == "rejected"
    assert lanes.lanes == {}


async def test_the_intent_goes_to_the_commands_own_partition_before_the_call_is_placed() -> None:
    ledger, lanes, _ = new_ledger()
    exotel = FakeExotel()
    result = await executor(exotel, journal=ledger.journal(3)).execute(
        CONNECT, command_type="call.connect"
    )
    assert result.outcome == "accepted"
    lane = lanes.lanes[3]
    assert lane.topics() == [LEDGER_TOPIC, INDEX_TOPIC]
    ledger_record, index_record = lane.written
    assert ledger_record.partition == 3
    assert ledger_record.key == b"call.connect:c-1"
    assert dict(ledger_record.headers)["voicebus-state"] == b"intent"
    intent = LedgerEntry.model_validate_json(ledger_record.value)
    assert intent.evidence == {"from": "+919876543210", "to": "+919812345678", "api": "v1"}
    assert json.loads(index_record.value) == {
        "partition": 3,
        "state": "intent",
        "at": NOW.timestamp(),
    }


async def test_an_outcome_is_written_with_its_facts_and_found_again() -> None:
    ledger, _, store = new_ledger()
    await ledger.intend(
        partition=3,
        command_id="c-1",
        command_type="call.connect",
        account="default",
        evidence={"api": "v1"},
    )
    await ledger.complete(3, accepted())
    done = await ledger.find("call.connect", "c-1", partition=3)
    assert done is not None
    assert (done.state, done.result, done.evidence) == ("done", accepted(), {"api": "v1"})
    await ledger.flush()
    assert store.entry("call.connect:c-1") is not None


async def test_an_outcome_names_its_command_record_so_a_redelivery_is_told_from_a_duplicate() -> (
    None
):
    ledger, _, store = new_ledger()
    source = record_source("call.connect", 3, 41)
    await ledger.complete(3, accepted(), source=source)
    await ledger.flush()
    restored, _, _ = new_ledger(store=store)  # a new process, from the same state
    done = await restored.find("call.connect", "c-1", partition=3)
    assert done is not None
    assert done.source == "call.connect/3/41"
    assert done.source != record_source("call.connect", 3, 42)  # a duplicate publish


async def test_an_outcome_not_yet_committed_is_already_found_by_the_next_command() -> None:
    ledger, lanes, store = new_ledger(RecordingLanes(hold_outcomes=True))
    await ledger.complete(3, accepted())
    assert store.entry("call.connect:c-1") is None  # its transaction has not committed
    found = await ledger.find("call.connect", "c-1", partition=3)
    assert found is not None
    assert found.state == "done"
    lanes.lanes[3].commit()
    await ledger.flush()
    assert store.entry("call.connect:c-1") is not None


async def test_outcomes_of_a_released_partition_are_forgotten_until_committed() -> None:
    ledger, _, _ = new_ledger(RecordingLanes(hold_outcomes=True))
    await ledger.complete(3, accepted())
    ledger.release({3})
    assert await ledger.find("call.connect", "c-1", partition=3) is None


async def test_a_duplicate_under_another_key_is_found_in_the_partition_the_index_names() -> None:
    fetched: list[tuple[int, str]] = []
    home, _, store = new_ledger()
    await home.complete(7, accepted())
    await home.flush()
    raw = store.entry("call.connect:c-1")
    assert raw is not None

    async def fetch(partition: int, key: str, at: float) -> bytes | None:
        fetched.append((partition, key))
        return raw.value

    # another replica: it knows the index row only, and reads the entry from partition 7
    elsewhere_store = StateStore(None)
    indexed = store.indexed("call.connect:c-1")
    assert indexed is not None
    elsewhere_store.apply(
        index=[IndexRow(indexed.key, indexed.partition, indexed.state, indexed.at)]
    )
    elsewhere, _, _ = new_ledger(store=elsewhere_store, fetch_foreign=fetch)
    found = await elsewhere.find("call.connect", "c-1", partition=2)
    assert found is not None
    assert found.result == accepted()
    assert fetched == [(7, "call.connect:c-1")]


async def test_idempotency_is_per_command_type() -> None:
    ledger, _, _ = new_ledger()
    await ledger.complete(0, accepted())
    assert await ledger.find("call.connect", "c-1", partition=0) is not None
    assert await ledger.find("leg.hangup", "c-1", partition=0) is None


async def test_outcomes_older_than_the_retention_expire() -> None:
    ledger, _, store = new_ledger()
    await ledger.complete(0, accepted())
    await ledger.flush()
    later = CommandLedger(store, RecordingLanes(), clock=lambda: NOW + timedelta(days=8))
    assert later.expire() == 2  # the entry and its index row
    assert await later.find("call.connect", "c-1", partition=0) is None


async def test_durable_entries_reach_the_store_together_off_the_event_loop() -> None:
    applied: list[int] = []

    class CountingStore(StateStore):
        def apply(self, **rows: Any) -> None:
            applied.append(len(rows.get("entries", ())))
            super().apply(**rows)

    store = CountingStore(None)
    ledger, _, _ = new_ledger(store=store)
    for n in range(5):
        await ledger.complete(n % 2, accepted(f"c-{n}"))
    assert store.entry("call.connect:c-0") is None, "not yet written"
    found = await ledger.find("call.connect", "c-0", partition=0)
    assert found is not None, "found before it is written"
    assert found.state == "done"
    await ledger.flush()
    assert applied == [5], "one write of the five"
    assert all(store.entry(f"call.connect:c-{n}") is not None for n in range(5))
    assert store.indexed("call.connect:c-3") is not None


async def test_an_unwritten_outcome_is_not_replaced_by_an_older_intent() -> None:
    ledger, _, store = new_ledger()
    await ledger.complete(3, accepted())
    ledger._remember(  # an intent read back late, say; the outcome stays
        LedgerEntry(
            command_id="c-1", command_type="call.connect", state="intent", account="x", at=NOW
        ),
        3,
    )
    found = await ledger.find("call.connect", "c-1", partition=3)
    assert found is not None
    assert found.state == "done"
    await ledger.flush()
    stored = store.entry("call.connect:c-1")
    assert stored is not None
    assert stored.state == "done"


async def test_an_entry_stays_in_memory_until_the_store_took_it() -> None:
    failures = [2]

    class FlakyStore(StateStore):
        def apply(self, **rows: Any) -> None:
            if failures[0]:
                failures[0] -= 1
                raise sqlite3.OperationalError("disk I/O error")
            super().apply(**rows)

    store = FlakyStore(None)
    ledger, _, _ = new_ledger(store=store, write_behind_seconds=0.001)
    await ledger.complete(3, accepted())
    await ledger.flush()
    assert failures == [0]
    assert store.entry("call.connect:c-1") is not None
    assert await ledger.find("call.connect", "c-1", partition=3) is not None


async def test_closing_writes_what_is_unwritten_first() -> None:
    ledger, _, store = new_ledger()
    await ledger.complete(3, accepted())
    await ledger.close()
    assert store.entry("call.connect:c-1") is not None
    await ledger.complete(4, accepted("c-2"))  # after close: kept in memory, never written
    assert store.entry("call.connect:c-2") is None


def outcome_by_reference(store: StateStore, offset: int = 12) -> bytes:
    """An outcome as a restore keeps it (no bytes, its ledger offset); the bytes in Kafka."""
    done = LedgerEntry(
        command_id="c-1",
        command_type="call.connect",
        state="done",
        account="default",
        at=NOW,
        result=accepted(),
        source="call.connect/5/3",
    )
    store.apply(entries=[EntryRow(done.key, 5, "done", NOW.timestamp(), b"", offset)])
    return done.model_dump_json().encode()


async def test_an_outcome_kept_by_reference_is_read_back_from_its_ledger_offset() -> None:
    store = StateStore(None)
    value = outcome_by_reference(store, offset=12)
    asked: list[tuple[int, int, str]] = []

    async def read_back(partition: int, offset: int, key: str, at: float) -> bytes | None:
        asked.append((partition, offset, key))
        return value

    ledger, _, _ = new_ledger(store=store, fetch_at=read_back)
    found = await ledger.find("call.connect", "c-1", partition=5)
    assert found is not None
    assert (found.result, found.source) == (accepted(), "call.connect/5/3")
    assert asked == [(5, 12, "call.connect:c-1")]


async def test_a_read_back_kafka_does_not_answer_is_tried_again(monkeypatch: Any) -> None:
    monkeypatch.setattr("services.executor.ledger.FETCH_BACKOFF_SECONDS", 0.0)
    store = StateStore(None)
    value = outcome_by_reference(store)
    failures = [ConnectionError("broker gone"), TimeoutError()]

    async def read_back(partition: int, offset: int, key: str, at: float) -> bytes | None:
        if failures:
            raise failures.pop(0)
        return value

    ledger, _, _ = new_ledger(store=store, fetch_at=read_back)
    found = await ledger.find("call.connect", "c-1", partition=5)
    assert found is not None
    assert found.result == accepted()
    assert failures == []


async def test_an_outcome_that_cannot_be_read_back_is_still_done_and_never_absent() -> None:
    store = StateStore(None)
    outcome_by_reference(store)

    async def nothing_there(partition: int, offset: int, key: str, at: float) -> bytes | None:
        return None

    ledger, _, _ = new_ledger(store=store, fetch_at=nothing_there)
    found = await ledger.find("call.connect", "c-1", partition=5)
    # done without its result: the pipeline reconciles it as in doubt, never sends blindly
    assert found is not None
    assert (found.state, found.result, found.command_id) == ("done", None, "c-1")
