"""leg.hangup, every outcome, through the executor's service layer with the fake Exotel:
by sid or by selector, legs already gone, partial failures, in doubt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.commands import LegHangup
from contracts.results import CommandResult
from services.exotel.requests import HangupRequest
from tests.support.exotel import (
    FakeExotel,
    FakeJournal,
    executor,
    intent_entry,
    leg,
    not_found,
    server_error,
)

CALL = "call0001"
OUTBOUND_CALL = [leg("agent1", "outbound"), leg("cust1", "outbound-dial")]


def hangup(**fields: Any) -> LegHangup:
    return LegHangup.model_validate({"command_id": "cmd-2", "call_sid": CALL, **fields})


async def run(exotel: FakeExotel, command: LegHangup, **kw: Any) -> CommandResult:
    service = executor(exotel, **kw.pop("service", {}))
    return await service.execute(command, command_type="leg.hangup", **kw)


def hung_up(exotel: FakeExotel) -> list[str]:
    requests = exotel.sent("hangup_leg")
    assert all(isinstance(r, HangupRequest) and r.call_sid == CALL for r in requests)
    return [r.leg_sid for r in requests]


async def test_a_leg_sid_is_hung_up_after_its_slot_and_intent() -> None:
    exotel = FakeExotel()
    result = await run(exotel, hangup(leg_sid="cust1"))
    assert (result.outcome, result.call_sid, result.leg_sid, result.attempts) == (
        "accepted",
        CALL,
        "cust1",
        1,
    )
    assert exotel.events == ["slot", "intent", "hangup_leg"]
    (request,) = exotel.sent("hangup_leg")
    assert request.form == {"action": "hangup"}


async def test_a_gone_leg_is_rejected_with_the_code_and_not_retried() -> None:
    exotel = FakeExotel().answer("hangup_leg", not_found("not found"))
    result = await run(exotel, hangup(leg_sid="gone1"))
    assert (result.outcome, result.attempts, result.leg_sid) == ("rejected", 1, "gone1")
    assert result.error is not None
    assert (result.error.code, result.error.http_status, result.error.retryable) == (
        "exotel_not_found",
        404,
        False,
    )


async def test_a_hangup_is_retried_after_a_server_error() -> None:
    exotel = FakeExotel().answer("hangup_leg", server_error(), leg("cust1", "outbound-dial"))
    result = await run(exotel, hangup(leg_sid="cust1"))
    assert (result.outcome, result.attempts) == ("accepted", 2)


async def test_a_404_after_a_lost_answer_means_our_hangup_worked() -> None:
    exotel = FakeExotel().answer("hangup_leg", server_error(502), not_found())
    result = await run(exotel, hangup(leg_sid="cust1"))
    assert (result.outcome, result.attempts) == ("accepted", 2)


@pytest.mark.parametrize(("selector", "sid"), [("agent", "agent1"), ("customer", "cust1")])
async def test_a_party_selector_hangs_up_that_party(selector: str, sid: str) -> None:
    exotel = FakeExotel().answer("active_legs", OUTBOUND_CALL)
    result = await run(exotel, hangup(leg=selector))
    assert (result.outcome, result.leg_sid) == ("accepted", sid)
    assert exotel.operations() == ["active_legs", "hangup_leg"]
    assert hung_up(exotel) == [sid]


async def test_monitor_hangs_up_every_monitor_leg_with_one_intent() -> None:
    exotel = FakeExotel().answer(
        "active_legs",
        [leg("a", "outbound"), leg("m1", "monitor", "listen"), leg("m2", "monitor", "barge")],
    )
    journal = FakeJournal(exotel.events)
    result = await run(exotel, hangup(leg="monitor"), service={"journal": journal})
    assert (result.outcome, result.leg_sid, result.attempts) == ("accepted", "m1", 3)
    assert hung_up(exotel) == ["m1", "m2"]
    assert [intent["evidence"] for intent in journal.intents] == [
        {"call_sid": CALL, "legs": "m1,m2"}
    ]


async def test_all_tolerates_legs_that_ended_with_the_call() -> None:
    exotel = FakeExotel().answer(
        "active_legs",
        [leg("a", "outbound"), leg("c", "outbound-dial"), leg("m1", "monitor", "listen")],
    )
    exotel.answer("hangup_leg", not_found(), sid="c")
    result = await run(exotel, hangup(leg="all"))
    assert (result.outcome, result.leg_sid) == ("accepted", "m1")
    assert hung_up(exotel) == ["m1", "a", "c"], "monitor legs first"


async def test_all_with_every_leg_gone_is_rejected_with_exotels_answer() -> None:
    exotel = FakeExotel().answer("active_legs", OUTBOUND_CALL)
    exotel.answer("hangup_leg", not_found())
    result = await run(exotel, hangup(leg="all"))
    assert (result.outcome, result.leg_sid) == ("rejected", "agent1")
    assert result.error is not None
    assert result.error.code == "exotel_not_found"


async def test_monitor_with_no_monitor_leg_is_rejected() -> None:
    exotel = FakeExotel().answer("active_legs", OUTBOUND_CALL)
    result = await run(exotel, hangup(leg="monitor"))
    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.field) == ("no_target_leg", "leg")
    assert exotel.operations() == ["active_legs"]


async def test_a_call_not_in_progress_is_rejected_before_any_hangup() -> None:
    exotel = FakeExotel().answer("active_legs", not_found())
    result = await run(exotel, hangup(leg="customer"))
    assert result.outcome == "rejected"
    assert result.error is not None
    assert result.error.code == "exotel_not_found"
    assert exotel.operations() == ["active_legs"]


async def test_a_partial_failure_names_what_was_hung_up() -> None:
    exotel = FakeExotel().answer(
        "active_legs",
        [leg("a", "outbound"), leg("m1", "monitor", "listen"), leg("m2", "monitor", "barge")],
    )
    exotel.answer("hangup_leg", server_error(), sid="m2")
    result = await run(exotel, hangup(leg="monitor"))
    assert (result.outcome, result.leg_sid) == ("failed", "m1")
    assert result.error is not None
    assert result.error.message.startswith("hung up 1 of 2 legs (m1), then: ")
    assert result.attempts == 1 + 1 + 3


async def test_an_in_doubt_hangup_whose_leg_is_gone_counts_as_done() -> None:
    exotel = FakeExotel().answer("hangup_leg", not_found())
    entry = intent_entry("leg.hangup", {"call_sid": CALL}, at=datetime.now(UTC))
    result = await run(exotel, hangup(leg_sid="leg-9"), in_doubt=entry)
    assert (result.outcome, result.leg_sid) == ("accepted", "leg-9")
