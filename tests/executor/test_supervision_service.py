"""lwb.action and leg.hangup through CommandService and the real ExotelClient, with Exotel
played by an httpx.MockTransport that answers with the LWB document's sample shapes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from contracts.commands import LegHangup, LwbAction
from contracts.results import CommandResult
from services.executor.mapping import CallbackTarget
from services.executor.retry import RetryPolicy
from services.executor.service import Account, CommandService
from services.exotel import ExotelAccount, ExotelClient
from services.exotel.client import LEG_TARGET_FIELD

DATA = Path(__file__).resolve().parents[1] / "data" / "exotel"
SID = "voicebus1"
CALL = "call0001"
BASE = f"/v1/Accounts/{SID}/Calls/{CALL}"

Answer = tuple[int, bytes | str]


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def active_legs(*legs: tuple[str, str, str]) -> str:
    """An activelegs answer in the doc's shape: (sid, origin, lastaction) per leg."""
    return json.dumps(
        {
            "legs": [
                {
                    "sid": sid,
                    "callsid": CALL,
                    "accountsid": SID,
                    "phonenumber": "09876543210",
                    "status": "in-progress",
                    "origin": origin,
                    "lastaction": last,
                    "datecreated": "2020-12-22 17:56:55",
                    "dateupdated": "2020-12-22 17:57:02",
                    "uri": f"/v1/accounts/{SID}/calls/{CALL}/activelegs",
                }
                for sid, origin, last in legs
            ]
        }
    )


def leg_answer(sid: str, origin: str = "monitor", last: str = "listen") -> str:
    return json.dumps(
        {
            "Leg": {
                "sid": sid,
                "callsid": CALL,
                "status": "in-progress",
                "origin": origin,
                "lastaction": last,
            }
        }
    )


INVALID_TRANSITION = (
    "<TwilioResponse><RestException><Status>400</Status>"
    "<Message>Invalid action transition</Message></RestException></TwilioResponse>"
)
OUTBOUND_CALL = active_legs(("agent1", "outbound", ""), ("cust1", "outbound-dial", ""))


@dataclass
class FakeExotel:
    """Answers queued per (method, path suffix); records every request."""

    answers: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, suffix: str, *answers: Answer) -> None:
        self.answers.setdefault((method, suffix), []).extend(answers)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        for (method, suffix), queue in self.answers.items():
            if request.method == method and path == BASE + suffix and queue:
                status, body = queue.pop(0) if len(queue) > 1 else queue[0]
                return httpx.Response(
                    status, content=body if isinstance(body, bytes) else body.encode()
                )
        raise AssertionError(f"unexpected request {request.method} {path}")

    def seen(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path.removeprefix(BASE)) for r in self.requests]

    def form(self, index: int) -> dict[str, str]:
        request = self.requests[index]
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


@dataclass
class Harness:
    exotel: FakeExotel
    service: CommandService

    async def lwb(self, **fields: Any) -> CommandResult:
        command = LwbAction.model_validate(
            {"command_id": "cmd-1", "call_sid": CALL, "supervisor": "+919800000001", **fields}
        )
        return await self.service.execute(command, command_type="lwb.action")

    async def hangup(self, **fields: Any) -> CommandResult:
        command = LegHangup.model_validate({"command_id": "cmd-2", "call_sid": CALL, **fields})
        return await self.service.execute(command, command_type="leg.hangup")


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    exotel = FakeExotel()
    account = ExotelAccount.model_validate(
        {
            "name": "default",
            "account_sid": SID,
            "api_key": "key-0123456789",
            "api_token": "tok-0123456789",
        }
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(exotel.handle)) as http:
        service = CommandService(
            accounts={"default": Account("default", "v1", ExotelClient(account, http))},
            callbacks=CallbackTarget("https://voicebus.example", "secret-token-0123456789"),
            retry_policy=RetryPolicy(
                max_attempts=3, initial_seconds=0.001, max_backoff_seconds=0.01
            ),
        )
        yield Harness(exotel, service)


# ------------------------------------------------------------------ create


async def test_listen_without_target_monitors_the_agent_leg_with_the_documented_fields(
    harness: Harness,
) -> None:
    harness.exotel.on("GET", "/activelegs.json", (200, sample("activelegs_two_legs.json")))
    harness.exotel.on("POST", "/legs.json", (200, sample("monitor_leg.xml")))

    result = await harness.lwb(action="listen", custom_field="team-7")

    assert result.outcome == "accepted", result.error
    assert result.leg_sid == "xxxxxxxxxxxxxxxxx"  # the sample's monitor leg sid
    assert result.call_sid == CALL
    assert result.attempts == 2
    assert harness.exotel.seen() == [("GET", "/activelegs.json"), ("POST", "/legs.json")]
    form = harness.exotel.form(1)
    callback = form.pop("StatusCallback")
    assert form == {
        "action": "listen",
        "PhoneNumber": "+919800000001",
        "TargetLegSid": "xxxxxxxxxx",  # origin outbound: the agent of a connect call
        "StatusCallbackEvents[0]": "terminal",
        "StatusCallbackContentType": "multipart/form-data",
        "CustomField": "team-7",
    }
    url = urlsplit(callback)
    assert url.path == "/exotel/callbacks/secret-token-0123456789"
    assert parse_qs(url.query) == {"command_id": ["cmd-1"], "account": ["default"], "api": ["lwb"]}


async def test_a_given_target_needs_no_active_legs_read(harness: Harness) -> None:
    harness.exotel.on("POST", "/legs.json", (200, leg_answer("mon1", last="whisper")))
    result = await harness.lwb(action="whisper", target_leg_sid="cust1")
    assert result.outcome == "accepted"
    assert result.attempts == 1
    assert harness.exotel.form(0)["TargetLegSid"] == "cust1"


async def test_whisper_with_an_ambiguous_agent_is_rejected_without_creating_a_leg(
    harness: Harness,
) -> None:
    harness.exotel.on(
        "GET",
        "/activelegs.json",
        (
            200,
            active_legs(
                ("c", "inbound", ""), ("a1", "outbound-dial", ""), ("a2", "outbound-dial", "")
            ),
        ),
    )
    result = await harness.lwb(action="whisper")
    assert result.outcome == "rejected"
    assert result.error is not None
    assert result.error.code == "no_target_leg"
    assert "ambiguous" in result.error.message
    assert result.error.field == "target_leg_sid"
    assert result.attempts == 1
    assert harness.exotel.seen() == [("GET", "/activelegs.json")]


async def test_call_not_in_progress_is_rejected_with_exotels_code(harness: Harness) -> None:
    harness.exotel.on("GET", "/activelegs.json", (404, sample("restexception_404.xml")))
    result = await harness.lwb(action="barge")
    assert result.outcome == "rejected"
    assert result.error is not None
    assert result.error.code == "exotel_not_found"
    assert result.error.http_status == 404
    assert result.error.exotel_code == "404"
    assert "not in progress" in result.error.message
    assert result.attempts == 1, "a 404 is final"


async def test_server_errors_on_create_are_retried_and_every_attempt_counted(
    harness: Harness,
) -> None:
    harness.exotel.on("GET", "/activelegs.json", (200, OUTBOUND_CALL))
    harness.exotel.on("POST", "/legs.json", (503, "Service Unavailable"), (200, leg_answer("mon1")))
    result = await harness.lwb(action="listen")
    assert result.outcome == "accepted"
    assert result.attempts == 3  # GET + two POSTs


async def test_server_errors_beyond_the_budget_fail(harness: Harness) -> None:
    harness.exotel.on("GET", "/activelegs.json", (200, OUTBOUND_CALL))
    harness.exotel.on("POST", "/legs.json", (502, "Bad Gateway"))
    result = await harness.lwb(action="listen")
    assert result.outcome == "failed"
    assert result.error is not None
    assert result.error.retryable
    assert result.attempts == 4  # GET + the budget of 3 POSTs


# ------------------------------------------------------------------ upgrade


async def test_listen_to_barge_upgrade_puts_the_new_action(harness: Harness) -> None:
    harness.exotel.on(
        "GET",
        "/activelegs.json",
        (200, active_legs(("a", "outbound", ""), ("mon1", "monitor", "listen"))),
    )
    harness.exotel.on("PUT", "/legs/mon1.json", (200, sample("monitor_leg_upgrade.xml")))
    result = await harness.lwb(action="barge", monitor_leg_sid="mon1")
    assert result.outcome == "accepted", result.error
    assert result.leg_sid == "mon1"
    assert result.attempts == 2
    assert harness.exotel.form(1) == {"action": "barge"}


async def test_upgrade_to_whisper_targets_the_agent_leg(harness: Harness) -> None:
    harness.exotel.on(
        "GET",
        "/activelegs.json",
        (
            200,
            active_legs(
                ("a", "outbound", ""), ("c", "outbound-dial", ""), ("mon1", "monitor", "listen")
            ),
        ),
    )
    harness.exotel.on("PUT", "/legs/mon1.json", (200, leg_answer("mon1", last="whisper")))
    result = await harness.lwb(action="whisper", monitor_leg_sid="mon1")
    assert result.outcome == "accepted"
    assert harness.exotel.form(1) == {"action": "whisper", LEG_TARGET_FIELD: "a"}


@pytest.mark.parametrize(
    ("current", "wanted"), [("barge", "whisper"), ("whisper", "whisper"), ("barge", "barge")]
)
async def test_illegal_upgrade_is_rejected_without_any_put(
    harness: Harness, current: str, wanted: str
) -> None:
    harness.exotel.on(
        "GET",
        "/activelegs.json",
        (200, active_legs(("a", "outbound", ""), ("mon1", "monitor", current))),
    )
    result = await harness.lwb(action=wanted, monitor_leg_sid="mon1")
    assert result.outcome == "rejected"
    assert result.error is not None
    assert result.error.code == "illegal_transition"
    assert f"{current} -> {wanted}" in result.error.message
    assert result.leg_sid == "mon1"
    assert harness.exotel.seen() == [("GET", "/activelegs.json")]


async def test_upgrade_of_a_leg_that_is_not_a_monitor_leg_is_rejected(harness: Harness) -> None:
    harness.exotel.on("GET", "/activelegs.json", (200, OUTBOUND_CALL))
    result = await harness.lwb(action="barge", monitor_leg_sid="agent1")
    assert result.outcome == "rejected"
    assert result.error is not None
    assert result.error.field == "monitor_leg_sid"
    assert harness.exotel.seen() == [("GET", "/activelegs.json")]


async def test_unlisted_monitor_leg_is_left_to_exotel(harness: Harness) -> None:
    harness.exotel.on("GET", "/activelegs.json", (200, OUTBOUND_CALL))  # still ringing
    harness.exotel.on("PUT", "/legs/mon9.json", (404, sample("restexception_leg_404.xml")))
    result = await harness.lwb(action="barge", monitor_leg_sid="mon9")
    assert result.outcome == "rejected"
    assert result.error is not None
    assert result.error.code == "exotel_not_found"
    assert "legsid does not exist" in result.error.message
    assert harness.exotel.seen() == [("GET", "/activelegs.json"), ("PUT", "/legs/mon9.json")]


async def test_upgrade_refused_after_a_lost_answer_is_reconciled_from_the_active_legs(
    harness: Harness,
) -> None:
    harness.exotel.on(
        "GET",
        "/activelegs.json",
        (200, active_legs(("a", "outbound", ""), ("mon1", "monitor", "listen"))),
        (200, active_legs(("a", "outbound", ""), ("mon1", "monitor", "barge"))),
    )
    harness.exotel.on(
        "PUT",
        "/legs/mon1.json",
        (502, "Bad Gateway"),  # Exotel may have acted on it
        (400, INVALID_TRANSITION),
    )
    result = await harness.lwb(action="barge", monitor_leg_sid="mon1")
    assert result.outcome == "accepted"
    assert result.attempts == 4


# ------------------------------------------------------------------ hangup


async def test_hangup_by_leg_sid_puts_action_hangup_form_urlencoded(harness: Harness) -> None:
    harness.exotel.on("PUT", "/legs/cust1.json", (200, sample("hangup_leg.json")))
    result = await harness.hangup(leg_sid="cust1")
    assert result.outcome == "accepted"
    assert result.leg_sid == "cust1"
    assert result.attempts == 1
    assert harness.exotel.form(0) == {"action": "hangup"}


async def test_hangup_of_a_gone_leg_is_rejected_with_the_code_and_not_retried(
    harness: Harness,
) -> None:
    harness.exotel.on("PUT", "/legs/gone1.json", (404, sample("restexception_404.json")))
    result = await harness.hangup(leg_sid="gone1")
    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.http_status, result.error.retryable) == (
        "exotel_not_found",
        404,
        False,
    )
    assert result.attempts == 1
    assert result.leg_sid == "gone1"


async def test_hangup_retried_after_a_server_error(harness: Harness) -> None:
    harness.exotel.on("PUT", "/legs/cust1.json", (503, ""), (200, sample("hangup_leg.json")))
    result = await harness.hangup(leg_sid="cust1")
    assert result.outcome == "accepted"
    assert result.attempts == 2


async def test_404_after_a_lost_answer_means_our_hangup_worked(harness: Harness) -> None:
    harness.exotel.on("PUT", "/legs/cust1.json", (502, ""), (404, sample("restexception_404.json")))
    result = await harness.hangup(leg_sid="cust1")
    assert result.outcome == "accepted"
    assert result.attempts == 2


@pytest.mark.parametrize(("selector", "sid"), [("agent", "agent1"), ("customer", "cust1")])
async def test_hangup_by_party_selector(harness: Harness, selector: str, sid: str) -> None:
    harness.exotel.on("GET", "/activelegs.json", (200, OUTBOUND_CALL))
    harness.exotel.on("PUT", f"/legs/{sid}.json", (200, leg_answer(sid, "outbound", "hangup")))
    result = await harness.hangup(leg=selector)
    assert result.outcome == "accepted"
    assert result.leg_sid == sid
    assert harness.exotel.seen() == [("GET", "/activelegs.json"), ("PUT", f"/legs/{sid}.json")]


async def test_hangup_monitor_hangs_up_every_monitor_leg(harness: Harness) -> None:
    harness.exotel.on(
        "GET",
        "/activelegs.json",
        (
            200,
            active_legs(
                ("a", "outbound", ""), ("m1", "monitor", "listen"), ("m2", "monitor", "barge")
            ),
        ),
    )
    harness.exotel.on("PUT", "/legs/m1.json", (200, leg_answer("m1", last="hangup")))
    harness.exotel.on("PUT", "/legs/m2.json", (200, leg_answer("m2", last="hangup")))
    result = await harness.hangup(leg="monitor")
    assert result.outcome == "accepted"
    assert result.leg_sid == "m1"
    assert result.attempts == 3
    assert [p for _, p in harness.exotel.seen()] == [
        "/activelegs.json",
        "/legs/m1.json",
        "/legs/m2.json",
    ]


async def test_hangup_all_tolerates_legs_that_ended_with_the_call(harness: Harness) -> None:
    harness.exotel.on(
        "GET",
        "/activelegs.json",
        (
            200,
            active_legs(
                ("a", "outbound", ""), ("c", "outbound-dial", ""), ("m1", "monitor", "listen")
            ),
        ),
    )
    harness.exotel.on("PUT", "/legs/m1.json", (200, leg_answer("m1", last="hangup")))
    harness.exotel.on("PUT", "/legs/a.json", (200, leg_answer("a", "outbound", "hangup")))
    harness.exotel.on("PUT", "/legs/c.json", (404, sample("restexception_404.json")))
    result = await harness.hangup(leg="all")
    assert result.outcome == "accepted"
    assert result.leg_sid == "m1"
    assert [p for _, p in harness.exotel.seen()][1:] == [
        "/legs/m1.json",
        "/legs/a.json",
        "/legs/c.json",
    ]


async def test_hangup_monitor_with_no_monitor_leg_is_rejected(harness: Harness) -> None:
    harness.exotel.on("GET", "/activelegs.json", (200, OUTBOUND_CALL))
    result = await harness.hangup(leg="monitor")
    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.field) == ("no_target_leg", "leg")
    assert harness.exotel.seen() == [("GET", "/activelegs.json")]


async def test_partial_failure_names_what_was_hung_up(harness: Harness) -> None:
    harness.exotel.on(
        "GET",
        "/activelegs.json",
        (
            200,
            active_legs(
                ("a", "outbound", ""), ("m1", "monitor", "listen"), ("m2", "monitor", "barge")
            ),
        ),
    )
    harness.exotel.on("PUT", "/legs/m1.json", (200, leg_answer("m1", last="hangup")))
    harness.exotel.on("PUT", "/legs/m2.json", (503, "down"))
    result = await harness.hangup(leg="monitor")
    assert result.outcome == "failed"
    assert result.leg_sid == "m1"
    assert result.error is not None
    assert result.error.message.startswith("hung up 1 of 2 legs (m1), then: ")
    assert result.attempts == 1 + 1 + 3
