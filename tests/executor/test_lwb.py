"""lwb.action, every outcome, through the executor's service layer with the fake Exotel:
which leg is monitored, which upgrades reach Exotel, what a lost answer means."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from contracts.commands import LwbAction
from contracts.results import CommandResult
from services.exotel.requests import MonitorLegRequest, MonitorUpgradeRequest
from tests.support.exotel import (
    FakeExotel,
    FakeLeg,
    executor,
    intent_entry,
    leg,
    not_found,
    rejected,
    server_error,
)

CALL = "call0001"
SUPERVISOR = "+919800000001"
OUTBOUND_CALL = [leg("agent1", "outbound"), leg("cust1", "outbound-dial")]


def lwb(**fields: Any) -> LwbAction:
    base = {"command_id": "cmd-1", "call_sid": CALL, "supervisor": SUPERVISOR}
    return LwbAction.model_validate(base | fields)


async def run(exotel: FakeExotel, command: LwbAction, **kw: Any) -> CommandResult:
    return await executor(exotel).execute(command, command_type="lwb.action", **kw)


def created(exotel: FakeExotel) -> MonitorLegRequest:
    (request,) = exotel.sent("create_monitor_leg")
    assert isinstance(request, MonitorLegRequest)
    return request


def upgraded(exotel: FakeExotel) -> MonitorUpgradeRequest:
    (request,) = exotel.sent("update_monitor_leg")
    assert isinstance(request, MonitorUpgradeRequest)
    return request


# ------------------------------------------------------------------ create


async def test_listen_without_target_monitors_the_agent_leg() -> None:
    exotel = FakeExotel().answer("active_legs", OUTBOUND_CALL)
    exotel.answer("create_monitor_leg", FakeLeg("mon9", "monitor", "listen"))
    result = await run(exotel, lwb(action="listen", custom_field="team-7"))
    assert (result.outcome, result.call_sid, result.leg_sid, result.attempts) == (
        "accepted",
        CALL,
        "mon9",
        2,
    )
    assert exotel.events == ["active_legs", "slot", "intent", "create_monitor_leg"]
    request = created(exotel)
    assert request.form["TargetLegSid"] == "agent1", "origin outbound: a connect call's agent"
    callback = urlsplit(request.form["StatusCallback"])
    assert parse_qs(callback.query) == {
        "command_id": ["cmd-1"],
        "account": ["default"],
        "api": ["lwb"],
    }


async def test_the_supervisors_number_goes_in_the_lwb_documents_format() -> None:
    exotel = FakeExotel()
    await run(exotel, lwb(action="listen", target_leg_sid="agent1"))
    assert created(exotel).form["PhoneNumber"] == "09800000001", "+91 and 10 digits: 0 + 10"


async def test_an_account_set_to_json_sends_create_and_upgrade_as_json() -> None:
    exotel = FakeExotel().answer("active_legs", [*OUTBOUND_CALL, leg("mon1", "monitor", "listen")])
    service = executor(exotel, lwb_encoding="json")
    await service.execute(lwb(action="listen", target_leg_sid="agent1"), command_type="lwb.action")
    await service.execute(
        lwb(command_id="cmd-2", action="barge", monitor_leg_sid="mon1"), command_type="lwb.action"
    )
    assert created(exotel).encoding == "json"
    assert upgraded(exotel).encoding == "json"
    assert upgraded(exotel).form == {"action": "barge"}


async def test_accounts_send_forms_by_default() -> None:
    exotel = FakeExotel()
    await run(exotel, lwb(action="listen", target_leg_sid="agent1"))
    assert created(exotel).encoding == "form"


async def test_a_given_target_needs_no_active_legs_read() -> None:
    exotel = FakeExotel()
    result = await run(exotel, lwb(action="whisper", target_leg_sid="cust1"))
    assert (result.outcome, result.attempts) == ("accepted", 1)
    assert created(exotel).form["TargetLegSid"] == "cust1"


async def test_an_ambiguous_agent_is_rejected_without_creating_a_leg() -> None:
    exotel = FakeExotel().answer(
        "active_legs",
        [leg("c", "inbound"), leg("a1", "outbound-dial"), leg("a2", "outbound-dial")],
    )
    result = await run(exotel, lwb(action="whisper"))
    assert (result.outcome, result.attempts) == ("rejected", 1)
    assert result.error is not None
    assert (result.error.code, result.error.field) == ("no_target_leg", "target_leg_sid")
    assert "ambiguous" in result.error.message
    assert exotel.operations() == ["active_legs"]


async def test_a_call_not_in_progress_is_rejected_with_exotels_code() -> None:
    exotel = FakeExotel().answer("active_legs", not_found())
    result = await run(exotel, lwb(action="barge"))
    assert (result.outcome, result.attempts) == ("rejected", 1)
    assert result.error is not None
    assert (result.error.code, result.error.http_status) == ("exotel_not_found", 404)
    assert "not in progress" in result.error.message


async def test_server_errors_on_create_are_retried_and_every_attempt_counted() -> None:
    exotel = FakeExotel().answer("active_legs", OUTBOUND_CALL)
    exotel.answer("create_monitor_leg", server_error(), FakeLeg("mon1"))
    result = await run(exotel, lwb(action="listen"))
    assert (result.outcome, result.attempts) == ("accepted", 3)  # GET + two POSTs
    assert exotel.events.count("intent") == 1


async def test_server_errors_beyond_the_budget_fail() -> None:
    exotel = FakeExotel().answer("active_legs", OUTBOUND_CALL)
    exotel.answer("create_monitor_leg", server_error(502))
    result = await run(exotel, lwb(action="listen"))
    assert (result.outcome, result.attempts) == ("failed", 4)  # GET + the budget of 3 POSTs
    assert result.error is not None
    assert result.error.retryable


async def test_an_in_doubt_create_finds_the_supervisors_leg_instead_of_a_second_one() -> None:
    exotel = FakeExotel().answer(
        "active_legs",
        [*OUTBOUND_CALL, leg("mon7", "monitor", "listen", phone_number="09800000001")],
    )
    entry = intent_entry("lwb.action", {"call_sid": CALL}, at=datetime.now(UTC))
    result = await run(exotel, lwb(action="listen"), in_doubt=entry)
    assert (result.outcome, result.leg_sid) == ("accepted", "mon7")
    assert exotel.operations() == ["active_legs"]


async def test_an_in_doubt_create_with_no_monitor_leg_listed_fails_in_doubt() -> None:
    exotel = FakeExotel().answer("active_legs", OUTBOUND_CALL)
    entry = intent_entry("lwb.action", {"call_sid": CALL}, at=datetime.now(UTC))
    result = await run(exotel, lwb(action="listen"), in_doubt=entry)
    assert result.outcome == "failed"
    assert result.error is not None
    assert (result.error.code, result.error.retryable) == ("in_doubt", False)
    assert "create_monitor_leg" not in exotel.operations()


# ------------------------------------------------------------------ upgrade


async def test_listen_to_barge_upgrade_puts_the_new_action() -> None:
    exotel = FakeExotel().answer(
        "active_legs", [leg("a", "outbound"), leg("mon1", "monitor", "listen")]
    )
    result = await run(exotel, lwb(action="barge", monitor_leg_sid="mon1"))
    assert (result.outcome, result.leg_sid, result.attempts) == ("accepted", "mon1", 2)
    assert exotel.events == ["active_legs", "slot", "intent", "update_monitor_leg"]
    assert upgraded(exotel).form == {"action": "barge"}


async def test_upgrade_to_whisper_targets_the_agent_leg() -> None:
    exotel = FakeExotel().answer(
        "active_legs",
        [leg("a", "outbound"), leg("c", "outbound-dial"), leg("mon1", "monitor", "listen")],
    )
    result = await run(exotel, lwb(action="whisper", monitor_leg_sid="mon1"))
    assert result.outcome == "accepted"
    assert upgraded(exotel).form == {"action": "whisper", "TargetLegSid": "a"}


@pytest.mark.parametrize(
    ("current", "wanted"), [("barge", "whisper"), ("whisper", "whisper"), ("barge", "barge")]
)
async def test_an_illegal_upgrade_is_rejected_without_any_put(current: str, wanted: str) -> None:
    exotel = FakeExotel().answer(
        "active_legs", [leg("a", "outbound"), leg("mon1", "monitor", current)]
    )
    result = await run(exotel, lwb(action=wanted, monitor_leg_sid="mon1"))
    assert (result.outcome, result.leg_sid) == ("rejected", "mon1")
    assert result.error is not None
    assert (result.error.code, result.error.field) == ("illegal_transition", "action")
    assert f"{current} -> {wanted}" in result.error.message
    assert exotel.operations() == ["active_legs"]


async def test_an_upgrade_of_a_leg_that_is_not_a_monitor_leg_is_rejected() -> None:
    exotel = FakeExotel().answer("active_legs", OUTBOUND_CALL)
    result = await run(exotel, lwb(action="barge", monitor_leg_sid="agent1"))
    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.field) == ("invalid_command", "monitor_leg_sid")
    assert exotel.operations() == ["active_legs"]


async def test_an_unlisted_monitor_leg_is_left_to_exotel() -> None:
    exotel = FakeExotel().answer("active_legs", OUTBOUND_CALL)  # still ringing
    exotel.answer("update_monitor_leg", not_found("Given LegSid does not exist"))
    result = await run(exotel, lwb(action="barge", monitor_leg_sid="mon9"))
    assert result.outcome == "rejected"
    assert result.error is not None
    assert result.error.code == "exotel_not_found"
    assert exotel.operations() == ["active_legs", "update_monitor_leg"]


async def test_an_upgrade_refused_after_a_lost_answer_is_reconciled_from_the_active_legs() -> None:
    exotel = FakeExotel().answer(
        "active_legs",
        [leg("a", "outbound"), leg("mon1", "monitor", "listen")],
        [leg("a", "outbound"), leg("mon1", "monitor", "barge")],
    )
    exotel.answer("update_monitor_leg", server_error(502), rejected())  # Exotel may have acted
    result = await run(exotel, lwb(action="barge", monitor_leg_sid="mon1"))
    assert (result.outcome, result.attempts) == ("accepted", 4)


async def test_an_in_doubt_upgrade_already_in_the_wanted_mode_is_not_sent_again() -> None:
    exotel = FakeExotel().answer(
        "active_legs", [leg("a", "outbound"), leg("mon1", "monitor", "barge")]
    )
    entry = intent_entry("lwb.action", {"monitor_leg_sid": "mon1"}, at=datetime.now(UTC))
    result = await run(exotel, lwb(action="barge", monitor_leg_sid="mon1"), in_doubt=entry)
    assert (result.outcome, result.leg_sid) == ("accepted", "mon1")
    assert exotel.operations() == ["active_legs"]
