"""Inbound calls (POST /_sandbox/inbound): a caller rings an ExoPhone, the call flow sends
its Passthru requests, dials the agent, and ends; and the spelling callbacks are sent in."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.exotel.fields import fold
from services.sandbox.testing import CallbackReceiver, SandboxControl
from tests.sandbox.helpers import Paths

CALLER = "+919812340001"
EXOPHONE = "08047112345"
AGENT = "+919876543210"
PASSTHRU_PARAMS = {
    "CallSid",
    "CallFrom",
    "CallTo",
    "Direction",
    "Created",
    "DialCallDuration",
    "StartTime",
    "CurrentTime",
    "EndTime",
    "CallType",
    "flow_id",
}


def ring(control: SandboxControl, receiver: CallbackReceiver, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "from": CALLER,
        "exophone": EXOPHONE,
        "agent": AGENT,
        "passthru_url": receiver.url("/passthru", account="default", sig="s1"),
    }
    view: dict[str, Any] = control.inbound(**(base | spec))
    return view


def passthrus(receiver: CallbackReceiver, sid: str, count: int) -> list[dict[str, str]]:
    found = receiver.wait_for(
        lambda item: item.path == "/passthru" and sid in item.query.values(), count=count
    )
    return [item.query for item in found]


def connected(control: SandboxControl, sid: str) -> dict[str, Any]:
    return control.wait_for_call(sid, lambda call: call["phase"] == "connected")


def test_an_inbound_call_sends_its_passthrus_before_and_after_the_connect_applet(
    control: SandboxControl, receiver: CallbackReceiver, exotel: httpx.Client, paths: Paths
) -> None:
    sid = ring(control, receiver, digits="42", record=True)["sid"]
    connected(control, sid)
    active = exotel.get(f"{paths.v1}/{sid}/activelegs.json").json()["legs"]
    control.end_call(sid)  # the caller hangs up
    view = control.wait_for_callbacks_settled(sid)
    first, last = passthrus(receiver, sid, 2)
    details = exotel.get(f"{paths.v1}/{sid}.json").json()["Call"]

    assert [(leg["origin"], leg["phonenumber"]) for leg in active] == [
        ("inbound", CALLER),
        ("outbound-dial", AGENT),
    ]
    assert set(first) == PASSTHRU_PARAMS | {"digits", "account", "sig"}
    assert (first["account"], first["sig"]) == ("default", "s1"), "the dashboard's URL kept"
    assert (first["CallFrom"], first["CallTo"], first["Direction"]) == (
        CALLER,
        EXOPHONE,
        "incoming",
    )
    assert (first["CallType"], first["digits"], first["DialCallDuration"]) == (
        "call-attempt",
        '"42"',
        "0",
    )
    assert first["EndTime"] == "1970-01-01 05:30:00"
    assert last["CallType"] == "completed"
    assert last["DialWhomNumber"] == AGENT
    assert int(last["DialCallDuration"]) >= 1
    assert last["RecordingUrl"].endswith(f"/{sid}.mp3")
    assert (view["status"], view["direction"], view["end_cause"]) == (
        "completed",
        "inbound",
        "admin",
    )
    assert [cb["attempts"][0]["status_code"] for cb in view["callbacks"]] == [200, 200]
    assert (details["Direction"], details["From"], details["To"], details["Status"]) == (
        "inbound",
        CALLER,
        EXOPHONE,
        "completed",
    )


def test_hanging_up_the_agents_leg_ends_the_connect_and_the_flow_goes_on_to_its_passthru(
    control: SandboxControl, receiver: CallbackReceiver, exotel: httpx.Client, paths: Paths
) -> None:
    sid = ring(control, receiver)["sid"]
    agent = next(leg for leg in connected(control, sid)["legs"] if leg["role"] == "agent")
    hung = exotel.put(f"{paths.v1}/{sid}/legs/{agent['sid']}.json", data={"action": "hangup"})
    view = control.wait_for_callbacks_settled(sid)
    last = passthrus(receiver, sid, 2)[-1]

    assert hung.status_code == 200
    assert view["end_cause"] == "hangup-agent"
    assert last["CallType"] == "completed"
    v3 = exotel.get(f"{paths.v3}/{sid}").json()["response"]["call_details"]
    assert (v3["direction"], v3["app_id"], v3["state"]) == ("inbound", "926", "terminal")


@pytest.mark.parametrize(
    ("agent", "call_type", "status"),
    [("+919876541111", "incomplete", "no-answer"), ("+919876542222", "incomplete", "no-answer")],
)
def test_an_agent_who_does_not_answer_makes_an_incomplete_flow(
    control: SandboxControl, receiver: CallbackReceiver, agent: str, call_type: str, status: str
) -> None:
    sid = ring(control, receiver, agent=agent)["sid"]
    view = control.wait_for_callbacks_settled(sid)
    assert passthrus(receiver, sid, 2)[-1]["CallType"] == call_type
    assert view["status"] == status


def test_a_caller_who_hangs_up_while_the_agent_rings_is_a_client_hangup(
    control: SandboxControl, receiver: CallbackReceiver
) -> None:
    sid = ring(control, receiver)["sid"]
    control.wait_for_call(sid, lambda call: call["phase"] == "agent_ringing")
    control.end_call(sid)
    view = control.wait_for_callbacks_settled(sid)
    assert passthrus(receiver, sid, 2)[-1]["CallType"] == "client-hangup"
    assert view["status"] == "canceled"


def test_a_sync_passthru_holds_the_flow_until_it_is_answered(
    control: SandboxControl, receiver: CallbackReceiver
) -> None:
    receiver.respond_with(200, delay_seconds=0.4)
    sid = ring(control, receiver, passthru_points=["before_connect"], talk_seconds=0.1)["sid"]
    view = control.wait_for_callbacks_settled(sid)
    (passthru,) = view["callbacks"]
    assert passthru["method"] == "GET"
    assert passthru["attempts"][0]["elapsed_seconds"] >= 0.4
    agent = next(leg for leg in view["legs"] if leg["role"] == "agent")
    assert agent["created"] > passthru["attempts"][0]["at"], "the Connect waited for it"


def test_a_passthru_answered_with_an_error_is_not_retried(
    control: SandboxControl, receiver: CallbackReceiver
) -> None:
    receiver.respond_with(503)
    sid = ring(control, receiver, passthru_points=["before_connect"], talk_seconds=0.1)["sid"]
    view = control.wait_for_callbacks_settled(sid)
    assert [a["status_code"] for a in view["callbacks"][0]["attempts"]] == [503]


def test_an_inbound_call_without_a_passthru_url_still_runs_its_flow(
    control: SandboxControl,
) -> None:
    view = control.inbound(**{"from": CALLER, "exophone": EXOPHONE, "agent": AGENT})
    control.wait_for_call(view["sid"], lambda call: call["phase"] == "connected")
    control.end_call(view["sid"])
    done = control.wait_for_callbacks_settled(view["sid"])
    assert (done["status"], done["callbacks"]) == ("completed", [])


def test_an_inbound_call_needs_its_caller_exophone_and_agent(control: SandboxControl) -> None:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        control.inbound(exophone=EXOPHONE)
    assert refused.value.response.status_code == 422


# ------------------------------------------------------------------ spelling


@pytest.mark.parametrize(
    ("spelling", "leg_sid_key", "duration_key"),
    [
        ("lowercase", "legsid", "oncallduration"),
        ("PascalCase", "LegSid", "OnCallDuration"),
        ("snake_case", "leg_sid", "on_call_duration"),
    ],
)
def test_monitor_leg_callbacks_are_sent_in_the_spelling_asked_for(
    control: SandboxControl,
    receiver: CallbackReceiver,
    exotel: httpx.Client,
    paths: Paths,
    spelling: str,
    leg_sid_key: str,
    duration_key: str,
) -> None:
    assert control.set_callback_spelling(spelling) == spelling
    sid = ring(control, receiver, passthru_url=None)["sid"]
    connected(control, sid)
    created = exotel.post(
        f"{paths.v1}/{sid}/legs.json",
        json={
            "action": "listen",
            "PhoneNumber": "09822200001",
            "StatusCallback": receiver.url("/monitor", spelling=spelling),
            "StatusCallbackContentType": "application/json",
            "StatusCallbackEvents[0]": "terminal",
        },
    )
    monitor = created.json()["leg"]["sid"]
    control.wait_for_call(
        sid, lambda call: any(leg["sid"] == monitor and leg["status"] == "in-progress"
                              for leg in call["legs"])
    )  # fmt: skip
    exotel.put(f"{paths.v1}/{sid}/legs/{monitor}.json", data={"action": "hangup"})
    (callback,) = receiver.wait_for(
        lambda item: item.path == "/monitor" and item.query.get("spelling") == spelling
    )
    control.end_call(sid)

    assert created.status_code == 200, created.text
    assert callback.json[leg_sid_key] == monitor
    assert duration_key in callback.json
    assert {fold(key) for key in callback.json} >= {"legsid", "callsid", "origin", "lastaction"}


def test_the_spelling_goes_back_to_the_documented_one_on_reset(control: SandboxControl) -> None:
    control.set_callback_spelling("snake_case")
    control.reset()
    assert control.set_callback_spelling("documented") == "documented"
