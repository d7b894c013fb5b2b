"""Active legs, monitor legs (listen / whisper / barge), hang-up and the Legs API."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from services.sandbox.testing import CallbackReceiver, SandboxControl
from tests.sandbox.helpers import Paths, connect_form

MONITOR_CALLBACK_KEYS = {
    "legsid",
    "callsid",
    "accountsid",
    "datecreated",
    "dateupdated",
    "starttime",
    "endtime",
    "phonenumber",
    "status",
    "oncallduration",
    "origin",
    "lastaction",
    "customfield",
    "eventtype",
}


@dataclass
class LiveCall:
    sid: str
    base: str  # /v1/Accounts/<sid>/Calls/<call sid>
    agent: str
    customer: str


@pytest.fixture
def live_call(exotel: httpx.Client, paths: Paths, control: SandboxControl) -> Iterator[LiveCall]:
    """A call whose customer (To ends 5555) stays on the line until hung up."""
    answer = exotel.post(f"{paths.v1}/connect.json", data=connect_form(To="+919811155555"))
    sid = answer.json()["Call"]["Sid"]
    view = control.wait_for_call(sid, lambda call: call["status"] == "in-progress")
    legs = {leg["role"]: leg["sid"] for leg in view["legs"]}
    yield LiveCall(sid, f"{paths.v1}/{sid}", legs["agent"], legs["customer"])
    control.end_call(sid)


def _monitor_joined(control: SandboxControl, call_sid: str, leg_sid: str) -> None:
    control.wait_for_call(
        call_sid,
        lambda call: any(
            leg["sid"] == leg_sid and leg["status"] == "in-progress" for leg in call["legs"]
        ),
    )


def test_active_legs_list_the_agent_and_customer_legs(
    exotel: httpx.Client, live_call: LiveCall
) -> None:
    as_json = exotel.get(f"{live_call.base}/activelegs.json")
    xml = ET.fromstring(exotel.get(f"{live_call.base}/activelegs").text)

    legs = as_json.json()["legs"]
    assert [(leg["sid"], leg["origin"]) for leg in legs] == [
        (live_call.agent, "outbound"),
        (live_call.customer, "outbound-dial"),
    ]
    assert set(legs[0]) == {
        "sid",
        "callsid",
        "accountsid",
        "phonenumber",
        "status",
        "origin",
        "lastaction",
        "datecreated",
        "dateupdated",
        "uri",
    }
    assert all(leg["status"] == "in-progress" and leg["callsid"] == live_call.sid for leg in legs)
    assert [leg.findtext("Origin") for leg in xml.findall("Legs/Leg")] == [
        "outbound",
        "outbound-dial",
    ]


def test_monitor_leg_rings_joins_upgrades_and_hangs_up_with_a_terminal_callback(
    exotel: httpx.Client,
    live_call: LiveCall,
    control: SandboxControl,
    receiver: CallbackReceiver,
) -> None:
    created = exotel.post(
        f"{live_call.base}/legs.json",
        data={
            "action": "listen",
            "PhoneNumber": "09822200001",
            "StatusCallback": receiver.url("/lwb", command_id="lwb-1"),
            "CustomField": "sup-1",
            "StatusCallbackEvents[0]": "terminal",
        },
    )
    leg = created.json()["leg"]
    monitor = leg["sid"]
    _monitor_joined(control, live_call.sid, monitor)
    active = exotel.get(f"{live_call.base}/activelegs.json").json()["legs"]
    leg_path = f"{live_call.base}/legs/{monitor}.json"
    whisper_without_target = exotel.put(leg_path, data={"action": "whisper"})
    whisper = exotel.put(leg_path, data={"action": "whisper", "TargetLegSid": live_call.agent})
    back_to_listen = exotel.put(leg_path, data={"action": "listen"})
    barge = exotel.put(leg_path, json={"Action": "barge"})
    barge_to_whisper = exotel.put(
        leg_path, data={"action": "whisper", "TargetLegSid": live_call.agent}
    )
    hangup = exotel.put(leg_path, data={"action": "hangup"})
    (callback,) = receiver.wait_for(lambda item: item.path == "/lwb")
    hangup_again = exotel.put(leg_path, data={"action": "hangup"})
    upgrade_ended = exotel.put(leg_path, data={"action": "barge"})

    assert created.status_code == 200
    assert leg["origin"] == "monitor"
    assert leg["lastaction"] == "listen"
    assert leg["callsid"] == live_call.sid
    assert [item["origin"] for item in active] == ["outbound", "outbound-dial", "monitor"]
    assert whisper_without_target.status_code == 400
    assert whisper.status_code == 200
    assert whisper.json()["leg"]["lastaction"] == "whisper"
    assert back_to_listen.status_code == 400
    assert barge.status_code == 200
    assert barge.json()["leg"]["lastaction"] == "barge"
    assert barge_to_whisper.status_code == 400
    assert "transition" in barge_to_whisper.json()["RestException"]["Message"]
    assert hangup.status_code == 200
    assert hangup.json()["legs"]["lastaction"] == "hangup"
    assert hangup.json()["legs"]["sid"] == monitor
    assert callback.content_type.startswith("multipart/form-data")
    assert callback.query == {"command_id": "lwb-1"}
    assert callback.form is not None
    assert set(callback.form) == MONITOR_CALLBACK_KEYS
    assert callback.form["legsid"] == monitor
    assert callback.form["status"] == "completed"
    assert callback.form["origin"] == "monitor"
    assert callback.form["customfield"] == "sup-1"
    assert callback.form["eventtype"] == "terminal"
    assert hangup_again.status_code == 404
    assert hangup_again.json()["RestException"]["Message"] == "Not Found"
    assert upgrade_ended.status_code == 404
    assert upgrade_ended.json()["RestException"]["Message"] == (
        "Given LegSid does not exist please check the LegSid passed"
    )


def test_whisper_needs_an_active_target_leg(exotel: httpx.Client, live_call: LiveCall) -> None:
    no_target = exotel.post(
        f"{live_call.base}/legs.json", data={"action": "whisper", "PhoneNumber": "09822200002"}
    )
    bad_target = exotel.post(
        f"{live_call.base}/legs.json",
        data={"action": "whisper", "PhoneNumber": "09822200002", "TargetLegSid": "nope"},
    )
    no_phone = exotel.post(f"{live_call.base}/legs", data={"action": "barge"})

    assert no_target.status_code == 400
    assert "TargetLegSid" in no_target.json()["RestException"]["Message"]
    assert bad_target.status_code == 400
    assert no_phone.status_code == 400
    assert "PhoneNumber" in (ET.fromstring(no_phone.text).findtext("RestException/Message") or "")


def test_monitor_legs_accept_json_bodies_and_send_json_callbacks(
    exotel: httpx.Client, live_call: LiveCall, receiver: CallbackReceiver
) -> None:
    created = exotel.post(
        f"{live_call.base}/legs",
        json={
            "action": "barge",
            "phonenumber": "09822211111",  # rings busy
            "statuscallback": receiver.url("/lwb-json"),
            "statuscallbackcontenttype": "application/json",
            "customfield": "legscustom",
        },
    )
    (callback,) = receiver.wait_for(lambda item: item.path == "/lwb-json")

    assert created.status_code == 200
    assert ET.fromstring(created.text).findtext("Leg/Origin") == "monitor"
    assert callback.content_type == "application/json"
    assert callback.json["status"] == "busy"
    assert callback.json["oncallduration"] == "0"
    assert callback.json["lastaction"] == "barge"
    assert set(callback.json) == MONITOR_CALLBACK_KEYS


def test_hanging_up_the_agent_leg_ends_the_call_and_its_legs_become_queryable(
    exotel: httpx.Client, live_call: LiveCall, control: SandboxControl
) -> None:
    monitor = exotel.post(
        f"{live_call.base}/legs.json", data={"action": "listen", "PhoneNumber": "09822200003"}
    ).json()["leg"]["sid"]
    _monitor_joined(control, live_call.sid, monitor)
    ongoing_legs = exotel.get(f"{live_call.base}/Legs.json")
    hangup = exotel.put(
        f"{live_call.base}/legs/{live_call.agent}",
        content="action=hangup",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    view = control.wait_for_call(live_call.sid)
    active = exotel.get(f"{live_call.base}/activelegs.json")
    completed = exotel.get(f"{live_call.base}/Legs.json")
    completed_xml = ET.fromstring(exotel.get(f"{live_call.base}/Legs").text)

    assert ongoing_legs.status_code == 400
    assert ongoing_legs.json() == {
        "RestException": {
            "Code": 400,
            "Message": "Bad Request",
            "Description": "Please check the callSID passed",
        }
    }
    assert hangup.status_code == 200
    assert ET.fromstring(hangup.text).findtext("Legs/LastAction") == "hangup"
    assert view["status"] == "completed"
    assert view["end_cause"] == "hangup-agent"
    assert active.status_code == 404
    assert active.json()["RestException"]["Message"] == "Given callSid is not in progress"
    body = completed.json()
    assert body["MetaData"] == {"Total": 3, "Count": 3}
    assert [leg["Origin"] for leg in body["legs"]] == ["outbound", "outbound-dial", "monitor"]
    assert [leg["Status"] for leg in body["legs"]] == ["completed"] * 3
    assert body["legs"][0]["LastAction"] == "hangup"
    assert body["legs"][0]["Uri"].endswith(f"/Legs/{live_call.agent}")
    assert set(body["legs"][0]) == {
        "Sid",
        "CallSid",
        "AccountSid",
        "PhoneNumber",
        "Status",
        "Origin",
        "LastAction",
        "DateCreated",
        "DateUpdated",
        "OnCallDuration",
        "Uri",
    }
    assert completed_xml.findtext("MetaData/Total") == "3"
    assert len(completed_xml.findall("Legs/Leg")) == 3


def test_active_legs_of_an_unknown_call_are_not_in_progress(
    exotel: httpx.Client, paths: Paths
) -> None:
    answer = exotel.get(f"{paths.v1}/{'e' * 32}/activelegs")

    assert answer.status_code == 404
    assert ET.fromstring(answer.text).findtext("RestException/Message") == (
        "Given callSid is not in progress"
    )
