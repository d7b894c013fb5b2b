"""call.lookup through the executor's service layer with the fake Exotel: one call's
details published before its result; a backfill walking bulk call details page by page,
refusing a filter Exotel would refuse, and resuming after an interruption."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts.commands import CallLookup
from contracts.decoding import InvalidCommand, decode_command
from contracts.results import CommandResult
from services.executor.commands.run import Interrupted
from services.executor.ledger import CommandLedger
from services.executor.service import CommandService
from services.executor.state.store import StateStore
from services.exotel._payload import load_payload
from services.exotel.models import BulkPage, CallDetails
from tests.exotel.conftest import sample
from tests.support.exotel import (
    FakeExotel,
    FakeFacts,
    FakeJournal,
    executor,
    intent_entry,
    not_found,
    server_error,
)
from tests.support.lanes import RecordingLanes

IST = ZoneInfo("Asia/Kolkata")
SID = "b6cfaf5f5cef3ca0fc937749ef96d245"


def lookup(**fields: Any) -> CallLookup:
    return CallLookup.model_validate({"command_id": "lk-1", **fields})


def v1_call(sid: str = SID) -> CallDetails:
    payload = load_payload(sample("v1_call_details_details_corrected.json"))
    call = CallDetails.from_v1_response(payload, IST)
    return call.model_copy(update={"call_sid": sid})


def page(*sids: str, next_uri: str | None = None) -> BulkPage:
    return BulkPage(calls=[v1_call(sid) for sid in sids], next_uri=next_uri)


async def run(
    service: CommandService, command: CallLookup | InvalidCommand, facts: FakeFacts, **kw: Any
) -> CommandResult:
    return await service.execute(command, command_type="call.lookup", facts=facts, **kw)


# ------------------------------------------------------------------ one call


async def test_one_calls_details_are_published_before_its_result() -> None:
    exotel = FakeExotel().answer("call_details", v1_call())
    facts = FakeFacts()
    result = await run(executor(exotel), lookup(call_sid=SID), facts)

    assert (result.outcome, result.call_sid, result.api, result.attempts) == (
        "accepted",
        SID,
        "v1",
        2,
    )
    assert result.lookup is not None
    assert (result.lookup.calls, result.lookup.pages, result.lookup.restarted) == (1, 0, False)
    (details,) = facts.published
    assert (details.call_sid, details.source, details.lookup_id, details.price) == (
        SID,
        "lookup",
        "lk-1",
        "1.500",
    )
    assert exotel.operations() == ["call_details", "completed_call_legs"]
    assert "slot" not in exotel.events, "a read: nothing of the voice family"


async def test_the_api_that_placed_the_call_is_asked_first() -> None:
    v2 = CallDetails.from_ccm("v2", load_payload(sample("v2_call_details_terminal.json")), IST)
    exotel = FakeExotel().answer("call_details", v2, v1_call())
    facts = FakeFacts()
    result = await run(executor(exotel), lookup(call_sid=SID, api="v2"), facts)
    assert result.api == "v2"
    assert exotel.sent("call_details") == [(SID, "v2"), (SID, "v1")]
    assert facts.published[0].price == "1.500"


async def test_an_unknown_call_is_rejected_with_exotels_code_and_nothing_published() -> None:
    exotel = FakeExotel().answer("call_details", not_found("Not Found"))
    facts = FakeFacts()
    result = await run(executor(exotel), lookup(call_sid="nope"), facts)
    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.http_status) == ("exotel_not_found", 404)
    assert facts.published == []


async def test_a_lookup_exotel_keeps_failing_is_failed_and_retryable() -> None:
    exotel = FakeExotel().answer("call_details", server_error())
    result = await run(executor(exotel), lookup(call_sid=SID), FakeFacts())
    assert (result.outcome, result.attempts) == ("failed", 3)
    assert result.error is not None
    assert result.error.retryable


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "(command)"),
        ({"call_sid": SID, "filter": {}}, "(command)"),
        ({"filter": {"since": "2025-01-01T00:00:00+05:30"}, "api": "v3"}, "(command)"),
        ({"filter": {"to": ["+91981234567" + str(i) for i in range(6)]}}, "filter.to"),
        ({"filter": {"until": "2025-01-01T00:00:00+05:30"}}, "filter.until"),
        (
            {
                "filter": {
                    "since": "2025-01-01T00:00:00+05:30",
                    "until": "2025-02-02T00:00:00+05:30",
                }
            },
            "filter.until",
        ),
        ({"filter": {"status": ["answered"]}}, "filter.status.0"),
        ({"filter": {"direction": ["sideways"]}}, "filter.direction.0"),
        ({"filter": {"since": "2025-01-01T00:00:00"}}, "filter.since"),
        ({"filter": {"caller": ["+919812345678"]}}, "filter.caller"),
    ],
)
async def test_a_lookup_exotel_would_refuse_is_rejected_naming_the_field(
    body: dict[str, Any], field: str
) -> None:
    decoded = decode_command("call.lookup", json.dumps({"command_id": "lk-1", **body}).encode())
    assert isinstance(decoded, InvalidCommand)
    exotel = FakeExotel()
    result = await run(executor(exotel), decoded, FakeFacts())
    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.field) == ("invalid_command", field)
    assert exotel.requests == []


def test_a_filter_of_exactly_one_month_is_fine() -> None:
    command = lookup(
        filter={"since": "2025-01-31T00:00:00+05:30", "until": "2025-02-28T00:00:00+05:30"}
    )
    assert command.message_key == "lk-1"
    assert lookup(call_sid=SID).message_key == SID


# ------------------------------------------------------------------ backfill

RECENT = {"since": (datetime.now(UTC) - timedelta(days=2)).isoformat()}


async def test_a_backfill_walks_every_page_and_publishes_each_call_once() -> None:
    exotel = (
        FakeExotel()
        .answer("bulk_page", page("c1", "c2", next_uri="/p2"))
        .answer("bulk_page", page("c3", next_uri="/p3"), sid="/p2")
        .answer("bulk_page", page("c4"), sid="/p3")
    )
    journal = FakeJournal(exotel.events)
    facts = FakeFacts()
    command = lookup(filter={**RECENT, "status": ["completed"], "to": ["+919812345678"]})
    result = await run(executor(exotel, journal=journal), command, facts)

    assert result.outcome == "accepted"
    assert result.lookup is not None
    assert (result.lookup.calls, result.lookup.pages, result.lookup.restarted) == (4, 3, False)
    assert result.call_sid is None
    assert [f.call_sid for f in facts.published] == ["c1", "c2", "c3", "c4"]
    assert {f.source for f in facts.published} == {"backfill"}
    assert {f.lookup_id for f in facts.published} == {"lk-1"}
    first, second, third = exotel.sent("bulk_page")
    filters = first["filters"]
    assert (filters.statuses, filters.to_numbers, first["oldest_first"]) == (
        ("completed",),
        ("+919812345678",),
        True,
    )
    assert first["page_size"] == 100, "Exotel's largest page unless configured"
    assert command.filter is not None
    assert filters.created_from == command.filter.since
    assert (second["page_uri"], third["page_uri"]) == ("/p2", "/p3")
    assert [i["evidence"] for i in journal.intents] == [
        {"next": "", "calls": "0", "pages": "0"},
        {"next": "/p2", "calls": "2", "pages": "1"},
        {"next": "/p3", "calls": "3", "pages": "2"},
    ]
    assert exotel.events[:2] == ["intent", "bulk_page"], "checkpointed before the first page"


async def test_a_backfill_older_than_six_months_is_refused_before_any_request() -> None:
    exotel = FakeExotel()
    old = {"since": (datetime.now(UTC) - timedelta(days=200)).isoformat()}
    result = await run(executor(exotel), lookup(filter=old), FakeFacts())
    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.field) == ("invalid_command", "filter.since")
    assert "6 months" in result.error.message
    assert exotel.requests == []


async def test_an_interrupted_backfill_resumes_after_its_last_checkpoint_and_says_so() -> None:
    exotel = (
        FakeExotel()
        .answer("bulk_page", page("c3", next_uri="/p3"), sid="/p2")
        .answer("bulk_page", page("c4"), sid="/p3")
    )
    facts = FakeFacts()
    checkpoint = intent_entry(
        "call.lookup",
        {"next": "/p2", "calls": "2", "pages": "1"},
        at=datetime.now(UTC),
        command_id="lk-1",
    )
    result = await run(executor(exotel), lookup(filter=RECENT), facts, in_doubt=checkpoint)
    assert result.lookup is not None
    assert (result.lookup.calls, result.lookup.pages, result.lookup.restarted) == (4, 3, True)
    assert [f.call_sid for f in facts.published] == ["c3", "c4"], "pages before it: not again"
    assert [r["page_uri"] for r in exotel.sent("bulk_page")] == ["/p2", "/p3"]


async def test_a_backfill_interrupted_before_its_first_page_starts_again_restarted() -> None:
    exotel = FakeExotel().answer("bulk_page", page("c1"))
    checkpoint = intent_entry(
        "call.lookup", {"next": "", "calls": "0", "pages": "0"}, at=datetime.now(UTC)
    )
    result = await run(executor(exotel), lookup(filter=RECENT), FakeFacts(), in_doubt=checkpoint)
    assert result.lookup is not None
    assert (result.lookup.calls, result.lookup.restarted) == (1, True)
    assert exotel.sent("bulk_page")[0]["page_uri"] is None


async def test_a_backfill_whose_partition_is_revoked_stops_between_pages_without_a_result() -> None:
    exotel = FakeExotel().answer("bulk_page", page("c1", next_uri="/p2"))
    facts = FakeFacts()
    ledger = CommandLedger(StateStore(None), RecordingLanes())
    pages = [0]

    def stopping() -> bool:
        pages[0] += 1
        return pages[0] > 1  # revoked once the first page is done

    with pytest.raises(Interrupted):
        await run(
            executor(exotel, journal=ledger.journal(0)),
            lookup(filter=RECENT),
            facts,
            stopping=stopping,
        )
    assert [f.call_sid for f in facts.published] == ["c1"]
    entry = await ledger.find("call.lookup", "lk-1", partition=0)
    assert entry is not None
    assert (entry.state, entry.evidence["next"], entry.evidence["calls"]) == ("intent", "/p2", "1")


async def test_a_page_that_fails_for_good_ends_the_backfill_with_the_counts_so_far() -> None:
    exotel = (
        FakeExotel()
        .answer("bulk_page", page("c1", next_uri="/p2"))
        .answer("bulk_page", server_error(), sid="/p2")
    )
    result = await run(executor(exotel), lookup(filter=RECENT), FakeFacts())
    assert result.outcome == "failed"
    assert result.error is not None
    assert result.error.message.startswith("backfill stopped after 1 calls in 1 pages: ")
    assert result.lookup is not None
    assert (result.lookup.calls, result.lookup.pages) == (1, 1)


async def test_the_configured_page_size_is_asked_for() -> None:
    exotel = FakeExotel()
    service = executor(exotel)
    service.backfill_page_size = 2
    await run(service, lookup(filter=RECENT), FakeFacts())
    assert exotel.sent("bulk_page")[0]["page_size"] == 2


async def test_an_empty_backfill_is_accepted_with_no_calls() -> None:
    facts = FakeFacts()
    result = await run(executor(FakeExotel()), lookup(filter=RECENT), facts)
    assert result.outcome == "accepted"
    assert result.lookup is not None
    assert (result.lookup.calls, result.lookup.pages) == (0, 1)
    assert facts.published == []
