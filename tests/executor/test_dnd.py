"""The DND guard of call.connect, through the executor's service layer with the fake
Exotel: a promotional call to a number on India's DND list is refused before anyone is
rung; transactional calls pass; the number's lookup is the cached number.lookup one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.commands import CallConnect, NumberLookup
from contracts.results import CommandResult
from services.executor.service import Account, CommandService
from tests.support.exotel import (
    FakeExotel,
    executor,
    intent_entry,
    metadata,
    server_error,
)

AGENT = "+919876543210"
CUSTOMER = "+919812347777"


def connect(**fields: Any) -> CallConnect:
    base = {"command_id": "c-1", "from": AGENT, "to": CUSTOMER, "caller_id": "08047112345"}
    return CallConnect.model_validate(base | fields)


def guarded(exotel: FakeExotel, *, account_dnd_check: bool = False) -> CommandService:
    service = executor(exotel)
    service.accounts = {"default": Account("default", "v1", exotel, dnd_check=account_dnd_check)}
    return service


async def run(service: CommandService, command: CallConnect, **kw: Any) -> CommandResult:
    return await service.execute(command, command_type="call.connect", **kw)


async def test_a_promotional_call_to_a_dnd_number_is_refused_and_nobody_is_rung() -> None:
    exotel = FakeExotel().answer("number_metadata", metadata("Yes"))
    result = await run(guarded(exotel), connect(dnd_check=True))

    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.field, result.error.retryable) == (
        "dnd_blocked",
        "to",
        False,
    )
    assert "DND" in result.error.message
    assert exotel.events == ["number_metadata"], "no slot, no intent, no call"
    assert exotel.sent("number_metadata") == [CUSTOMER]
    assert result.number is not None
    assert (result.number.number, result.number.dnd) == (CUSTOMER, "yes")
    assert (result.call_sid, result.api, result.attempts) == (None, "v1", 1)


async def test_a_number_not_on_the_list_is_called_after_its_lookup() -> None:
    exotel = FakeExotel().answer("number_metadata", metadata("No"))
    result = await run(guarded(exotel), connect(dnd_check=True))
    assert (result.outcome, result.call_sid, result.attempts) == ("accepted", "call-1", 2)
    assert exotel.events == ["number_metadata", "slot", "intent", "place_call"]
    assert result.number is not None
    assert (result.number.dnd, result.number.cached) == ("no", False)


async def test_a_transactional_call_is_never_looked_up() -> None:
    exotel = FakeExotel().answer("number_metadata", metadata("Yes"))
    result = await run(guarded(exotel), connect(dnd_check=True, call_type="trans"))
    assert result.outcome == "accepted"
    assert exotel.operations() == ["place_call"]
    assert result.number is None


@pytest.mark.parametrize(
    ("account_dnd_check", "command_dnd_check", "looked_up"),
    [(True, None, True), (True, False, False), (False, None, False), (False, True, True)],
)
async def test_the_command_says_whether_to_check_else_its_account(
    account_dnd_check: bool, command_dnd_check: bool | None, looked_up: bool
) -> None:
    exotel = FakeExotel().answer("number_metadata", metadata("No"))
    service = guarded(exotel, account_dnd_check=account_dnd_check)
    await run(service, connect(dnd_check=command_dnd_check))
    assert ("number_metadata" in exotel.operations()) is looked_up


async def test_a_number_exotel_cannot_tell_about_is_called() -> None:
    exotel = FakeExotel().answer("number_metadata", metadata("Unavailable"))
    result = await run(guarded(exotel), connect(dnd_check=True))
    assert result.outcome == "accepted"
    assert result.number is not None
    assert result.number.dnd == "unavailable"


async def test_a_failed_lookup_rings_nobody_and_says_the_check_failed() -> None:
    exotel = FakeExotel().answer("number_metadata", server_error())
    result = await run(guarded(exotel), connect(dnd_check=True))
    assert (result.outcome, result.attempts) == ("failed", 3)
    assert result.error is not None
    assert result.error.code == "exotel_unavailable"
    assert result.error.retryable
    assert result.error.message.startswith("DND check of 'to' failed, nobody was rung")
    assert "place_call" not in exotel.operations()


async def test_a_number_looked_up_before_costs_no_second_request() -> None:
    exotel = FakeExotel().answer("number_metadata", metadata("No"))
    service = guarded(exotel, account_dnd_check=True)
    lookup = NumberLookup.model_validate({"command_id": "n-1", "number": "09812347777"})
    await service.execute(lookup, command_type="number.lookup")
    first = await run(service, connect())
    second = await run(service, connect(command_id="c-2"))
    assert [first.outcome, second.outcome] == ["accepted", "accepted"]
    assert exotel.operations() == ["number_metadata", "place_call", "place_call"]
    assert second.number is not None
    assert second.number.cached


async def test_a_call_flow_and_a_v3_call_follow_the_same_rule() -> None:
    flow = FakeExotel()
    await run(
        guarded(flow, account_dnd_check=True),
        connect(to=None, flow_url="http://my.exotel.com/sid/exoml/start_voice/1"),
    )
    assert flow.operations() == ["place_call"], "a flow has no `to` to check"

    v3 = FakeExotel().answer("number_metadata", metadata("Yes"))
    result = await run(guarded(v3), connect(api="v3", dnd_check=True))
    assert result.error is not None
    assert result.error.code == "dnd_blocked"


async def test_an_in_doubt_call_is_reconciled_without_a_second_lookup() -> None:
    exotel = FakeExotel().answer("bulk_call_details", [])
    intent = intent_entry(
        "call.connect", {"from": AGENT, "to": CUSTOMER, "api": "v1"}, at=datetime.now(UTC)
    )
    result = await run(guarded(exotel, account_dnd_check=True), connect(), in_doubt=intent)
    assert exotel.operations() == ["bulk_call_details"]
    assert result.error is not None
    assert result.error.code == "in_doubt"
