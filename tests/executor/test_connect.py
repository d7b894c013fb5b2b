"""call.connect, every outcome, through the executor's service layer with the fake Exotel
(no broker, no HTTP): the integration tests prove the same wiring end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.commands import CallConnect
from contracts.decoding import InvalidCommand
from contracts.results import CommandResult
from services.exotel.requests import CcmCallRequest, V1ConnectRequest
from tests.support.exotel import (
    FakeExotel,
    FakeJournal,
    FakeStatuses,
    Placed,
    answer_lost,
    busy_agent,
    executor,
    intent_entry,
    not_connected,
    rate_limited,
    server_error,
    unauthorised,
)

AGENT = "+919876543210"
CUSTOMER = "+919812345678"


def connect(**fields: Any) -> CallConnect:
    base = {"command_id": "c-1", "from": AGENT, "to": CUSTOMER, "caller_id": "08047112345"}
    return CallConnect.model_validate(base | fields)


async def run(
    exotel: FakeExotel, command: CallConnect | InvalidCommand, **kw: Any
) -> CommandResult:
    service = executor(exotel, **kw.pop("service", {}))
    return await service.execute(command, command_type="call.connect", **kw)


def code_of(result: CommandResult) -> str | None:
    return result.error.code if result.error else None


# ------------------------------------------------------------------ accepted


async def test_a_call_is_placed_after_its_slot_and_its_recorded_intent() -> None:
    exotel = FakeExotel()
    result = await run(exotel, connect())
    assert (result.outcome, result.call_sid, result.api, result.attempts) == (
        "accepted",
        "call-1",
        "v1",
        1,
    )
    assert exotel.events == ["slot", "intent", "place_call"]
    (request,) = exotel.sent("place_call")
    assert isinstance(request, V1ConnectRequest)
    assert request.form["From"] == AGENT


async def test_the_intent_names_what_reconciling_needs() -> None:
    exotel = FakeExotel()
    journal = FakeJournal(exotel.events)
    await run(exotel, connect(), service={"journal": journal})
    assert journal.intents == [
        {
            "command_id": "c-1",
            "command_type": "call.connect",
            "account": "default",
            "evidence": {"from": AGENT, "to": CUSTOMER, "api": "v1"},
        }
    ]


async def test_the_accounts_api_is_used_when_the_command_names_none() -> None:
    exotel = FakeExotel()
    result = await run(exotel, connect(), service={"default_api": "v3"})
    assert result.api == "v3"
    (request,) = exotel.sent("place_call")
    assert isinstance(request, CcmCallRequest)
    assert request.api == "v3"
    assert "api=v3" in request.body["status_callback"][0]["url"]


async def test_server_errors_are_retried_and_every_attempt_counted_with_one_intent() -> None:
    exotel = FakeExotel().answer("place_call", server_error(), server_error(), Placed("CA9"))
    result = await run(exotel, connect())
    assert (result.outcome, result.call_sid, result.attempts) == ("accepted", "CA9", 3)
    assert exotel.events.count("intent") == 1
    assert exotel.events.count("slot") == 3, "every attempt waits for its own slot"


async def test_a_rate_limited_request_is_retried() -> None:
    exotel = FakeExotel().answer("place_call", rate_limited(retry_after=0.001), Placed("CA9"))
    result = await run(exotel, connect())
    assert (result.outcome, result.attempts) == ("accepted", 2)


async def test_a_timeout_before_sending_is_retried_not_reconciled() -> None:
    exotel = FakeExotel().answer("place_call", not_connected(), Placed("CA9"))
    result = await run(exotel, connect())
    assert (result.outcome, result.attempts) == ("accepted", 2)
    assert exotel.sent("bulk_call_details") == []


# ------------------------------------------------------------------ refused before Exotel


async def test_an_invalid_command_is_rejected_naming_the_field_and_nothing_is_sent() -> None:
    exotel = FakeExotel()
    invalid = InvalidCommand(
        command_type="call.connect",
        command_id="c-1",
        account="default",
        field="recording_channels",
        message="invalid field 'recording_channels': Input should be 'single' or 'dual'",
    )
    result = await run(exotel, invalid)
    assert (result.outcome, code_of(result), result.attempts) == ("rejected", "invalid_command", 0)
    assert result.error is not None
    assert result.error.field == "recording_channels"
    assert exotel.events == []


async def test_an_unknown_account_is_rejected_without_calling_exotel() -> None:
    exotel = FakeExotel()
    result = await run(exotel, connect(account="nobody"))
    assert (result.outcome, code_of(result), result.account) == (
        "rejected",
        "unknown_account",
        "nobody",
    )
    assert result.error is not None
    assert result.error.field == "account"
    assert exotel.events == []


async def test_an_option_the_api_does_not_offer_is_rejected_before_any_intent() -> None:
    exotel = FakeExotel()
    result = await run(exotel, connect(api="v1", streaming={"url": "wss://audio.example"}))
    assert (result.outcome, code_of(result), result.api) == ("rejected", "invalid_command", "v1")
    assert result.error is not None
    assert result.error.field == "streaming"
    assert exotel.events == []


# ------------------------------------------------------------------ refused by Exotel


async def test_a_busy_agent_is_rejected_with_exotels_code_and_not_retried() -> None:
    exotel = FakeExotel().answer("place_call", busy_agent())
    result = await run(exotel, connect(api="v3"))
    assert (result.outcome, result.attempts, result.call_sid) == ("rejected", 1, None)
    assert result.error is not None
    assert (result.error.code, result.error.http_status, result.error.exotel_code) == (
        "exotel_rejected",
        409,
        "10706",
    )
    assert result.error.retryable is False


async def test_server_errors_beyond_the_budget_fail_as_retryable() -> None:
    exotel = FakeExotel().answer("place_call", server_error(502))
    result = await run(exotel, connect())
    assert (result.outcome, code_of(result), result.attempts) == (
        "failed",
        "exotel_unavailable",
        3,
    )
    assert result.error is not None
    assert (result.error.http_status, result.error.retryable) == (502, True)


async def test_wrong_credentials_are_rejected() -> None:
    exotel = FakeExotel().answer("place_call", unauthorised())
    result = await run(exotel, connect())
    assert (result.outcome, code_of(result), result.attempts) == ("rejected", "exotel_auth", 1)


# ------------------------------------------------------------------ in doubt


async def test_a_lost_answer_is_looked_for_not_placed_again() -> None:
    exotel = FakeExotel()
    exotel.answer("place_call", answer_lost())
    exotel.answer("bulk_call_details", [Placed("placed-despite-timeout")])
    result = await run(exotel, connect(), service={"reconcile_window": 1.0})
    assert (result.outcome, result.call_sid) == ("accepted", "placed-despite-timeout")
    assert result.attempts == 2, "one connect, one bulk call-details lookup"
    assert exotel.operations() == ["place_call", "bulk_call_details"]


async def test_a_lost_answer_with_no_call_found_fails_in_doubt_without_ringing_again() -> None:
    exotel = FakeExotel().answer("place_call", answer_lost())
    result = await run(exotel, connect())
    assert (result.outcome, code_of(result)) == ("failed", "in_doubt")
    assert len(exotel.sent("place_call")) == 1


async def test_a_lost_answer_on_a_long_call_is_found_from_the_calls_own_status_events() -> None:
    # Bulk call details list finished calls only: a conversation outlasting the reconcile
    # window is not there, but its answered callback, carrying the command id, is.
    exotel = FakeExotel().answer("place_call", answer_lost())
    statuses = FakeStatuses(reported={"c-1": "ringing-for-an-hour"}, after_polls=2)
    result = await run(exotel, connect(), service={"reconcile_window": 5.0, "statuses": statuses})
    assert (result.outcome, result.call_sid) == ("accepted", "ringing-for-an-hour")
    assert len(exotel.sent("place_call")) == 1
    assert [command_id for command_id, _ in statuses.searches] == ["c-1"]
    assert statuses.closed == 1


async def test_an_in_doubt_connect_after_a_crash_searches_status_events_since_its_intent() -> None:
    statuses = FakeStatuses(reported={"c-1": "found-by-status"})
    since = datetime.now(UTC) - timedelta(seconds=5)
    entry = intent_entry("call.connect", {"api": "v1"}, at=since)
    result = await run(FakeExotel(), connect(), in_doubt=entry, service={"statuses": statuses})
    assert (result.outcome, result.call_sid) == ("accepted", "found-by-status")
    assert statuses.searches == [("c-1", since - timedelta(seconds=60))]


async def test_an_in_doubt_connect_finds_the_call_instead_of_placing_it_again() -> None:
    exotel = FakeExotel().answer("bulk_call_details", [Placed("already-placed")])
    since = datetime.now(UTC) - timedelta(seconds=5)
    entry = intent_entry("call.connect", {"from": AGENT, "to": CUSTOMER, "api": "v3"}, at=since)
    result = await run(exotel, connect(), in_doubt=entry)
    assert (result.outcome, result.call_sid, result.api) == ("accepted", "already-placed", "v3")
    assert exotel.operations() == ["bulk_call_details"]
    (filters,) = exotel.sent("bulk_call_details")
    assert filters["from_numbers"] == [AGENT]
    assert filters["to_numbers"] == [CUSTOMER]
    assert filters["created_from"] == since - timedelta(seconds=60)


async def test_an_in_doubt_connect_looks_again_until_the_window_passes_then_fails() -> None:
    exotel = FakeExotel()
    entry = intent_entry("call.connect", {"api": "v1"}, at=datetime.now(UTC))
    result = await run(exotel, connect(), in_doubt=entry, service={"reconcile_window": 0.1})
    assert (result.outcome, code_of(result)) == ("failed", "in_doubt")
    assert result.error is not None
    assert result.error.retryable is False
    assert "not sent again so that nobody is rung twice" in result.error.message
    assert "place_call" not in exotel.operations()
    assert len(exotel.sent("bulk_call_details")) >= 2, "bulk details list finished calls only"


async def test_an_in_doubt_connect_whose_lookup_fails_says_so() -> None:
    exotel = FakeExotel().answer("bulk_call_details", server_error())
    entry = intent_entry("call.connect", {"api": "v1"}, at=datetime.now(UTC))
    result = await run(exotel, connect(), in_doubt=entry)
    assert (result.outcome, code_of(result)) == ("failed", "in_doubt")
    assert result.error is not None
    assert "lookup failed: Service Unavailable" in result.error.message
    assert result.attempts == 3


async def test_a_journal_that_cannot_record_the_intent_stops_the_call_being_placed() -> None:
    class BrokenJournal(FakeJournal):
        async def intend(self, **entry: Any) -> None:
            raise ConnectionError("Kafka is gone")

    exotel = FakeExotel()
    service = executor(exotel, journal=BrokenJournal(exotel.events))
    with pytest.raises(ConnectionError):  # the pipeline retries; the offset stays uncommitted
        await service.execute(connect(), command_type="call.connect")
    assert exotel.events == ["slot"]
