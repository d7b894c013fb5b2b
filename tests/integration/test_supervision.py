"""Supervisors and hang-ups end to end: lwb.action and leg.hangup through Kafka, the
executor and the sandbox (Exotel's LWB legs API), and the monitor leg's terminal callback
through the ingress onto call.status.

Each test places its own agent-customer call with call.connect; a ``to`` number ending in
5555 keeps the sandbox's call in progress until the test ends it. The supervisor flow runs
with the monitor leg's callback in each key spelling the sandbox can send (lowercase as
the LWB document, PascalCase as the Legs API, snake_case) and with both LWB request
encodings (the ``default`` account's forms, the ``lwb-json`` account's JSON).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from contracts.topics import (
    CALL_CONNECT,
    CALL_CONNECT_RESULT,
    CALL_STATUS,
    LEG_HANGUP,
    LEG_HANGUP_RESULT,
    LWB_ACTION,
    LWB_ACTION_RESULT,
)
from services.sandbox.testing import SandboxControl
from tests.integration.stack import JSON_LWB_ACCOUNT, Stack, publish, running_stack
from tests.support.facts import Fact, FactReader, for_command

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

AGENT = "+919876543210"
CUSTOMER = "+919812345555"  # ...5555: the sandbox keeps the call going
SUPERVISOR = "+919800000001"

JsonDict = dict[str, Any]


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(kafka_env) as running:
        yield running


@pytest.fixture(scope="module")
async def facts(kafka_settings: Any, stack: Stack) -> AsyncIterator[FactReader]:
    reader = await FactReader(
        kafka_settings.bootstrap_servers,
        [CALL_CONNECT_RESULT, LWB_ACTION_RESULT, LEG_HANGUP_RESULT, CALL_STATUS],
    ).start()
    yield reader
    await reader.stop()


@pytest.fixture(scope="module")
async def control(stack: Stack) -> AsyncIterator[SandboxControl]:
    """The sandbox's admin API; its async HTTP client is closed with the module."""
    control = stack.sandbox.control
    yield control
    await control.aclose()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Supervision:
    """One test's view of the stack: publish commands for a call and read their results."""

    def __init__(self, kafka_settings: Any, control: SandboxControl, facts: FactReader) -> None:
        self.bootstrap = kafka_settings.bootstrap_servers
        self.sandbox = control
        self.facts = facts

    async def place_call(self) -> str:
        """An answered agent-customer call (v1 connect); returns its sid."""
        command_id = new_id("connect")
        command = {
            "command_id": command_id,
            "from": AGENT,
            "to": CUSTOMER,
            "caller_id": "08047112345",
        }
        await publish(self.bootstrap, CALL_CONNECT, command, key=AGENT)
        (result,) = await self.facts.wait_for(
            CALL_CONNECT_RESULT, for_command(command_id), timeout=45
        )
        assert result.value["outcome"] == "accepted", result.value
        call_sid: str = result.value["call_sid"]
        await self.sandbox.wait_for_call_async(
            call_sid, lambda call: call["phase"] == "connected", timeout=15
        )
        return call_sid

    async def lwb(self, call_sid: str, **fields: Any) -> str:
        command_id = new_id("lwb")
        command = {"command_id": command_id, "call_sid": call_sid, **fields}
        await publish(self.bootstrap, LWB_ACTION, command, key=call_sid)
        return command_id

    async def hangup(self, call_sid: str, **fields: Any) -> str:
        command_id = new_id("hangup")
        command = {"command_id": command_id, "call_sid": call_sid, **fields}
        await publish(self.bootstrap, LEG_HANGUP, command, key=call_sid)
        return command_id

    async def result(self, topic: str, command_id: str) -> JsonDict:
        (fact,) = await self.facts.wait_for(topic, for_command(command_id), timeout=45)
        value: JsonDict = fact.value
        assert fact.key == (value["call_sid"] or command_id)
        assert fact.headers["ce_type"] == f"voicebus.{topic}"
        return value

    async def leg(self, call_sid: str, leg_sid: str) -> JsonDict:
        view = await self.sandbox.call_async(call_sid)
        (leg,) = [leg for leg in view["legs"] if leg["sid"] == leg_sid]
        return dict(leg)

    async def party(self, call_sid: str, role: str) -> JsonDict:
        view = await self.sandbox.call_async(call_sid)
        (leg,) = [leg for leg in view["legs"] if leg["role"] == role]
        return dict(leg)

    async def wait_leg_in_progress(self, call_sid: str, leg_sid: str) -> None:
        def answered(call: JsonDict) -> bool:
            return any(
                leg["sid"] == leg_sid and leg["status"] == "in-progress" for leg in call["legs"]
            )

        await self.sandbox.wait_for_call_async(call_sid, answered, timeout=15)

    async def requests(self, call_sid: str, since: int = 0) -> list[JsonDict]:
        return await self.sandbox.requests_async(call_sid=call_sid, since=since)

    async def end(self, call_sid: str) -> None:
        await self.sandbox.end_call_async(call_sid)


@pytest.fixture
def sup(kafka_settings: Any, control: SandboxControl, facts: FactReader) -> Supervision:
    return Supervision(kafka_settings, control, facts)


def legs_requests(requests: list[JsonDict]) -> list[tuple[str, str]]:
    """(method, path tail) of the legs API requests, in arrival order."""
    return [
        (r["method"], r["path"].split(f"/Calls/{r['call_sid']}", 1)[-1])
        for r in requests
        if "/legs" in r["path"] or "/activelegs" in r["path"]
    ]


# ------------------------------------------------------------------ the supervisor flow

LEG_SID_KEY = {"lowercase": "legsid", "PascalCase": "LegSid", "snake_case": "leg_sid"}


def body_of(request: JsonDict) -> JsonDict:
    """The fields of a legs API request, whichever way it was encoded."""
    fields: JsonDict = request["form"] or request["json"] or {}
    return fields


def call_terminals(facts: FactReader, call_sid: str) -> list[Fact]:
    """The call's own terminal facts (a leg's never counts)."""
    return facts.matching(
        CALL_STATUS,
        lambda f: (
            isinstance(f.value, dict)
            and f.value.get("call_sid") == call_sid
            and f.value.get("event_type") == "terminal"
            and f.value.get("leg_sid") is None
        ),
    )


@pytest.mark.parametrize(
    ("spelling", "account", "content_type"),
    [
        ("lowercase", "default", "application/x-www-form-urlencoded"),
        ("PascalCase", JSON_LWB_ACCOUNT, "application/json"),
        ("snake_case", "default", "application/x-www-form-urlencoded"),
    ],
)
async def test_supervisor_listens_then_barges_then_leaves(
    sup: Supervision, spelling: str, account: str, content_type: str
) -> None:
    await sup.sandbox.set_callback_spelling_async(spelling)
    try:
        await supervise(sup, spelling, account, content_type)
    finally:
        await sup.sandbox.set_callback_spelling_async("documented")


async def supervise(sup: Supervision, spelling: str, account: str, content_type: str) -> None:
    call_sid = await sup.place_call()
    agent = await sup.party(call_sid, "agent")

    listen_id = await sup.lwb(
        call_sid, action="listen", supervisor=SUPERVISOR, custom_field="s-1", account=account
    )
    listened = await sup.result(LWB_ACTION_RESULT, listen_id)
    assert listened["outcome"] == "accepted", listened
    assert listened["command_type"] == "lwb.action"
    assert listened["call_sid"] == call_sid
    assert listened["attempts"] == 2  # GET activelegs + POST legs
    monitor_sid = listened["leg_sid"]
    assert monitor_sid
    monitor = await sup.leg(call_sid, monitor_sid)
    assert monitor["role"] == "monitor"
    assert monitor["last_action"] == "listen"
    assert monitor["target_leg_sid"] == agent["sid"], "no target given: the agent leg"

    (create,) = [
        r for r in await sup.requests(call_sid) if r["method"] == "POST" and "/legs" in r["path"]
    ]
    assert create["content_type"] == content_type
    fields = body_of(create)
    assert fields["action"] == "listen"
    assert fields["PhoneNumber"] == "09800000001", "+91 and 10 digits, as the LWB document asks"
    assert fields["StatusCallbackEvents[0]"] == "terminal"
    assert fields["CustomField"] == "s-1"
    assert f"command_id={listen_id}" in fields["StatusCallback"]
    assert "api=lwb" in fields["StatusCallback"]
    assert f"account={account}" in fields["StatusCallback"]

    await sup.wait_leg_in_progress(call_sid, monitor_sid)
    barge_id = await sup.lwb(
        call_sid,
        action="barge",
        supervisor=SUPERVISOR,
        monitor_leg_sid=monitor_sid,
        account=account,
    )
    barged = await sup.result(LWB_ACTION_RESULT, barge_id)
    assert barged["outcome"] == "accepted", barged
    assert barged["leg_sid"] == monitor_sid
    assert (await sup.leg(call_sid, monitor_sid))["last_action"] == "barge"
    (upgrade,) = [
        r for r in await sup.requests(call_sid) if r["method"] == "PUT" and "/legs/" in r["path"]
    ]
    assert upgrade["content_type"] == content_type
    assert body_of(upgrade) == {"action": "barge"}

    hangup_id = await sup.hangup(call_sid, leg="monitor")
    hung = await sup.result(LEG_HANGUP_RESULT, hangup_id)
    assert hung["outcome"] == "accepted", hung
    assert hung["command_type"] == "leg.hangup"
    assert hung["leg_sid"] == monitor_sid
    assert hung["attempts"] == 2  # GET activelegs + PUT hangup

    (terminal,) = await sup.facts.wait_for(
        CALL_STATUS,
        lambda f: isinstance(f.value, dict) and f.value.get("leg_sid") == monitor_sid,
        timeout=30,
    )
    event = terminal.value
    assert terminal.key == call_sid
    assert event["call_sid"] == call_sid
    assert event["event_type"] == "terminal"
    assert event["api"] == "lwb"
    assert event["origin"] == "monitor"
    assert event["status"] == "completed"
    # The leg was barging when hung up; Exotel's hang-up answer reports lastaction "hangup".
    assert event["last_action"] in ("barge", "hangup")
    assert event["command_id"] == listen_id
    assert event["account"] == account
    assert event["custom_field"] == "s-1"
    assert LEG_SID_KEY[spelling] in event["raw"], f"the callback came {spelling}"

    view = await sup.sandbox.call_async(call_sid)
    assert not view["ended"], "hanging up the supervisor leaves the call going"
    assert call_terminals(sup.facts, call_sid) == [], "the monitor's end is not the call's"
    assert [m for _, m in legs_requests(await sup.requests(call_sid))] == [
        "/activelegs.json",
        "/legs.json",
        "/activelegs.json",
        f"/legs/{monitor_sid}.json",
        "/activelegs.json",
        f"/legs/{monitor_sid}.json",
    ]
    await sup.end(call_sid)


# ------------------------------------------------------------------ rejections


async def test_whisper_on_a_call_that_is_no_longer_in_progress_is_rejected(
    sup: Supervision,
) -> None:
    call_sid = await sup.place_call()
    await sup.end(call_sid)

    command_id = await sup.lwb(call_sid, action="whisper", supervisor=SUPERVISOR)
    result = await sup.result(LWB_ACTION_RESULT, command_id)
    assert result["outcome"] == "rejected"
    assert result["error"]["code"] == "exotel_not_found"
    assert result["error"]["http_status"] == 404
    assert "not in progress" in result["error"]["message"]
    assert result["attempts"] == 1
    assert not [
        r for r in await sup.requests(call_sid) if r["method"] != "GET" and "/legs" in r["path"]
    ]


async def test_whisper_with_no_resolvable_agent_leg_is_rejected(sup: Supervision) -> None:
    call_sid = await sup.place_call()
    customer = await sup.party(call_sid, "customer")
    # Exotel lists only the dialled leg and a monitor: the call's first leg is gone, so
    # no leg can be told to be the agent's.
    legs = {
        "legs": [
            {"sid": customer["sid"], "callsid": call_sid, "status": "in-progress",
             "origin": "outbound-dial", "lastaction": ""},
            {"sid": "monitor0000", "callsid": call_sid, "status": "in-progress",
             "origin": "monitor", "lastaction": "listen"},
        ]
    }  # fmt: skip
    await sup.sandbox.add_fault_async(
        f"/Calls/{call_sid}/activelegs", method="GET", status=200, body=json.dumps(legs)
    )
    try:
        command_id = await sup.lwb(call_sid, action="whisper", supervisor=SUPERVISOR)
        result = await sup.result(LWB_ACTION_RESULT, command_id)
    finally:
        await sup.sandbox.clear_faults_async()
    assert result["outcome"] == "rejected"
    assert result["error"]["code"] == "no_target_leg"
    assert result["error"]["field"] == "target_leg_sid"
    assert "(none)" in result["error"]["message"]
    assert legs_requests(await sup.requests(call_sid)) == [("GET", "/activelegs.json")]
    await sup.end(call_sid)


async def test_illegal_transition_is_rejected_without_any_upgrade_request(
    sup: Supervision,
) -> None:
    call_sid = await sup.place_call()
    listened = await sup.result(
        LWB_ACTION_RESULT, await sup.lwb(call_sid, action="listen", supervisor=SUPERVISOR)
    )
    monitor_sid = listened["leg_sid"]
    await sup.wait_leg_in_progress(call_sid, monitor_sid)
    barged = await sup.result(
        LWB_ACTION_RESULT,
        await sup.lwb(call_sid, action="barge", supervisor=SUPERVISOR, monitor_leg_sid=monitor_sid),
    )
    assert barged["outcome"] == "accepted", barged
    before = max(r["seq"] for r in await sup.requests(call_sid))

    command_id = await sup.lwb(
        call_sid, action="whisper", supervisor=SUPERVISOR, monitor_leg_sid=monitor_sid
    )
    result = await sup.result(LWB_ACTION_RESULT, command_id)
    assert result["outcome"] == "rejected"
    assert result["error"]["code"] == "illegal_transition"
    assert "barge -> whisper" in result["error"]["message"]
    assert result["leg_sid"] == monitor_sid
    after = await sup.requests(call_sid, since=before)
    assert legs_requests(after) == [("GET", "/activelegs.json")], "no PUT reached Exotel"
    assert (await sup.leg(call_sid, monitor_sid))["last_action"] == "barge"
    await sup.end(call_sid)


async def test_hangup_of_an_ended_leg_is_rejected_with_exotels_404(sup: Supervision) -> None:
    call_sid = await sup.place_call()
    listened = await sup.result(
        LWB_ACTION_RESULT, await sup.lwb(call_sid, action="listen", supervisor=SUPERVISOR)
    )
    monitor_sid = listened["leg_sid"]
    await sup.wait_leg_in_progress(call_sid, monitor_sid)
    first = await sup.result(LEG_HANGUP_RESULT, await sup.hangup(call_sid, leg_sid=monitor_sid))
    assert first["outcome"] == "accepted", first
    assert first["attempts"] == 1, "by sid: no active-legs read"

    again = await sup.result(LEG_HANGUP_RESULT, await sup.hangup(call_sid, leg_sid=monitor_sid))
    assert again["outcome"] == "rejected"
    assert again["leg_sid"] == monitor_sid
    assert again["attempts"] == 1, "a 404 is not retried"
    error = again["error"]
    assert error["code"] == "exotel_not_found"
    assert error["http_status"] == 404
    assert error["retryable"] is False
    await sup.end(call_sid)


# ------------------------------------------------------------------ ordering


def monitor_changes(requests: list[JsonDict]) -> list[tuple[str, str | None, str | None]]:
    """(method, action, PhoneNumber) of the requests that change legs, in arrival order."""
    return [
        (r["method"], (r["form"] or {}).get("action"), (r["form"] or {}).get("PhoneNumber"))
        for r in requests
        if r["method"] in ("POST", "PUT") and "/legs" in r["path"]
    ]


async def test_commands_on_one_call_and_topic_reach_exotel_in_the_order_published(
    sup: Supervision,
) -> None:
    call_sid = await sup.place_call()
    first = await sup.lwb(call_sid, action="listen", supervisor="+919800000001")
    second = await sup.lwb(call_sid, action="barge", supervisor="+919800000002")
    third = await sup.lwb(call_sid, action="whisper", supervisor="+919800000003")

    results = [await sup.result(LWB_ACTION_RESULT, c) for c in (first, second, third)]
    for result in results:
        assert result["outcome"] == "accepted", result["error"]
    assert [r["completed_at"] for r in results] == sorted(r["completed_at"] for r in results)
    assert monitor_changes(await sup.requests(call_sid)) == [
        ("POST", "listen", "09800000001"),
        ("POST", "barge", "09800000002"),
        ("POST", "whisper", "09800000003"),
    ]
    await sup.end(call_sid)


async def test_listen_barge_hangup_across_topics_reach_exotel_in_the_order_published(
    sup: Supervision,
) -> None:
    call_sid = await sup.place_call()
    agent = await sup.party(call_sid, "agent")

    listen_id = await sup.lwb(call_sid, action="listen", supervisor="+919800000001")
    barge_id = await sup.lwb(call_sid, action="barge", supervisor="+919800000002")
    hangup_id = await sup.hangup(call_sid, leg="agent")

    listened = await sup.result(LWB_ACTION_RESULT, listen_id)
    barged = await sup.result(LWB_ACTION_RESULT, barge_id)
    hung = await sup.result(LEG_HANGUP_RESULT, hangup_id)
    changes = monitor_changes(await sup.requests(call_sid))
    view = await sup.sandbox.wait_for_call_async(call_sid, timeout=15)

    assert changes == [
        ("POST", "listen", "09800000001"),
        ("POST", "barge", "09800000002"),
        ("PUT", "hangup", None),
    ]
    for result in (listened, barged, hung):
        assert result["outcome"] == "accepted", result["error"]
    assert hung["leg_sid"] == agent["sid"]
    assert view["end_cause"] == "hangup-agent", "the agent hanging up ends the call"
