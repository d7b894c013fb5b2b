"""Exotel's response and error shapes: auth, XML vs JSON, validation, number rules."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx

from services.sandbox.testing import SandboxControl, SandboxServer
from tests.sandbox.helpers import Paths, connect_form, v3_body


def test_wrong_credentials_get_exotel_401_in_each_api_shape(
    sandbox: SandboxServer, paths: Paths, control: SandboxControl
) -> None:
    with httpx.Client(base_url=sandbox.base_url, auth=("sandbox-key", "nope")) as client:
        xml = client.post(f"{paths.v1}/connect", data=connect_form())
        as_json = client.post(f"{paths.v1}/connect.json", data=connect_form())
        v3 = client.post(paths.v3, json=v3_body())
        anonymous = httpx.get(f"{sandbox.base_url}{paths.v1}/abc.json")

    assert xml.status_code == 401
    root = ET.fromstring(xml.text)
    assert root.tag == "TwilioResponse"
    assert root.findtext("RestException/Status") == "401"
    assert root.findtext("RestException/Message") == "Authentication failed"
    assert as_json.status_code == 401
    assert as_json.json()["RestException"]["Status"] == 401
    assert v3.status_code == 401
    assert v3.json()["http_code"] == 401
    assert v3.json()["response"]["status"] == "failure"
    assert v3.json()["response"]["error_data"]["code"] == 1010
    assert v3.json()["response"]["error_data"]["message"] == "Authentication failed"
    assert anonymous.status_code == 401
    assert "sandbox-token" not in sandbox.logs()


def test_unknown_account_sid_is_not_found(exotel: httpx.Client) -> None:
    v1 = exotel.post("/v1/Accounts/someone-else/Calls/connect.json", data=connect_form())
    v3 = exotel.post("/v3/accounts/someone-else/calls", json=v3_body())

    assert v1.status_code == 404
    assert v3.status_code == 404
    assert v3.json()["response"]["error_data"]["code"] == 1017


def test_v1_connect_answers_xml_by_default_and_json_with_dot_json(
    exotel: httpx.Client, paths: Paths
) -> None:
    xml = exotel.post(f"{paths.v1}/connect", data=connect_form())
    as_json = exotel.post(f"{paths.v1}/connect.json", data=connect_form())

    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("application/xml")
    call = ET.fromstring(xml.text).find("Call")
    assert call is not None
    sid = call.findtext("Sid") or ""
    assert len(sid) == 32
    assert int(sid, 16) >= 0
    assert call.findtext("Status") == "in-progress"
    assert call.findtext("Direction") == "outbound-api"
    assert call.findtext("PhoneNumberSid") == "08047112345"
    assert call.find("EndTime") is not None
    assert call.findtext("EndTime") == ""  # <EndTime/>
    body = as_json.json()["Call"]
    assert as_json.headers["content-type"] == "application/json"
    assert body["Status"] == "in-progress"
    assert body["From"] == "+919800012345"
    assert body["To"] == "+919811154321"
    assert body["EndTime"] is None
    assert body["AccountSid"] == paths.sid
    assert set(body) >= {"Sid", "ParentCallSid", "DateCreated", "DateUpdated", "Uri", "Price"}


def test_lowercase_accounts_and_calls_paths_are_accepted(
    exotel: httpx.Client, paths: Paths
) -> None:
    response = exotel.post(f"/v1/accounts/{paths.sid}/calls/connect.json", data=connect_form())

    assert response.status_code == 200


def test_missing_mandatory_v1_parameters_are_named_in_the_rest_exception(
    exotel: httpx.Client, paths: Paths
) -> None:
    no_from = exotel.post(f"{paths.v1}/connect.json", data=connect_form(From=None))
    no_to = exotel.post(f"{paths.v1}/connect", data=connect_form(To=None))
    no_caller = exotel.post(f"{paths.v1}/connect.json", data=connect_form(CallerId=None))

    assert no_from.status_code == 400
    assert "From" in no_from.json()["RestException"]["Message"]
    assert no_to.status_code == 400
    assert "To" in (ET.fromstring(no_to.text).findtext("RestException/Message") or "")
    assert "CallerId" in no_caller.json()["RestException"]["Message"]


def test_connect_to_a_flow_needs_no_to_number(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    form = connect_form(To=None, Url="http://my.exotel.com/sandbox/exoml/start_voice/926")
    response = exotel.post(f"{paths.v1}/connect.json", data=form)

    assert response.status_code == 200
    view = control.wait_for_call(response.json()["Call"]["Sid"])
    assert view["status"] == "completed"
    assert [leg["role"] for leg in view["legs"]] == ["agent"]


def test_unknown_exophone_is_rejected_by_v1_and_v3(exotel: httpx.Client, paths: Paths) -> None:
    v1 = exotel.post(f"{paths.v1}/connect.json", data=connect_form(CallerId="08047110000"))
    v3 = exotel.post(paths.v3, json=v3_body(virtual_number="+918047110000"))

    assert v1.status_code == 400
    assert "CallerId" in v1.json()["RestException"]["Message"]
    assert v3.status_code == 404
    assert v3.json()["response"]["error_data"]["code"] == 10716
    assert v3.json()["response"]["error_data"]["message"] == "Given virtual_number not found"


def test_busy_agent_is_rejected_with_exotel_code(exotel: httpx.Client, paths: Paths) -> None:
    v3 = exotel.post(paths.v3, json=v3_body(**{"from": {"contact_uri": "+919800019999"}}))
    v2 = exotel.post(
        paths.v2,
        json={
            "from": {"user_contact_uri": "+919800019999"},
            "to": {"customer_contact_uri": "+919811154321"},
            "virtual_number": "+918047112345",
        },
    )

    assert v3.status_code == 409
    envelope = v3.json()
    assert envelope["method"] == "POST"
    assert envelope["http_code"] == 409
    assert envelope["response"]["code"] == 409
    assert envelope["response"]["status"] == "failure"
    assert envelope["response"]["error_data"]["code"] == 10706
    assert envelope["response"]["error_data"]["message"] == "User device is currently busy"
    assert v2.status_code == 409
    assert v2.json()["response"]["error_data"]["code"] == 10706


def test_v1_places_a_call_from_a_busy_device_and_it_ends_busy(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    response = exotel.post(f"{paths.v1}/connect.json", data=connect_form(From="+919800019999"))

    assert response.status_code == 200
    view = control.wait_for_call(response.json()["Call"]["Sid"])
    assert view["status"] == "busy"


def test_state_managed_agent_on_a_live_call_is_busy_for_v3(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    managed = {"contact_uri": "+919800077777", "state_management": True}
    first = exotel.post(
        paths.v3, json=v3_body(**{"from": managed, "to": {"contact_uri": "+919811155555"}})
    )
    second = exotel.post(paths.v3, json=v3_body(**{"from": managed}))
    control.end_call(first.json()["response"]["call_details"]["sid"])
    third = exotel.post(paths.v3, json=v3_body(**{"from": managed}))

    assert first.status_code == 200
    assert second.status_code == 409
    assert third.status_code == 200


def test_invalid_recording_channels_get_code_1002(exotel: httpx.Client, paths: Paths) -> None:
    v3 = exotel.post(paths.v3, json=v3_body(recording={"record": True, "channels": "triple"}))

    assert v3.status_code == 400
    assert v3.json()["response"]["error_data"]["code"] == 1002


def test_v3_post_and_get_return_call_details_envelopes(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    created = exotel.post(paths.v3, json=v3_body(custom_field="order-42"))
    details = created.json()["response"]["call_details"]
    active = exotel.get(f"{paths.v3}/{details['sid']}").json()["response"]["call_details"]
    control.wait_for_call(details["sid"])
    done = exotel.get(f"{paths.v3}/{details['sid']}").json()["response"]["call_details"]
    legs = exotel.get(f"{paths.v3}/{details['sid']}/legs").json()["response"]["leg_details"]
    missing = exotel.get(f"{paths.v3}/{'0' * 32}")

    assert created.json()["response"]["status"] == "success"
    assert created.json()["response"]["error_data"] is None
    assert details["state"] == "active"
    assert details["status"] is None
    assert details["custom_field"] == "order-42"
    assert details["legs"] == f"/v3/accounts/{paths.sid}/calls/{details['sid']}/legs"
    assert details["created_time"].endswith("+05:30")
    assert active["end_time"] == "1970-01-01 05:30:00+05:30"  # Exotel's quirk for active calls
    assert done["state"] == "terminal"
    assert done["status"] == "completed"
    assert done["total_talk_time"] >= 1
    assert [leg["contact_uri"] for leg in legs["from"]] == ["+919800012345"]
    assert [leg["status"] for leg in legs["to"]] == ["completed"]
    assert missing.status_code == 404
    assert missing.json()["response"]["error_data"]["code"] == 10744


def test_v2_post_and_get_use_the_data_block(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    created = exotel.post(
        paths.v2,
        json={
            "from": {"user_contact_uri": "+919800012345"},
            "to": {"customer_contact_uri": "+919811154321"},
            "virtual_number": "+918047112345",
            "recording": True,
        },
    )
    data = created.json()["response"]["data"]
    control.wait_for_call(data["call_sid"])
    done = exotel.get(f"{paths.v2}/{data['call_sid']}").json()["response"]["data"]

    assert data["call_state"] == "active"
    assert data["assigned_agent_details"]["contact_uri"] == "+919800012345"
    assert "T" in data["created_time"]
    assert data["created_time"].endswith("+05:30")
    assert done["call_state"] == "terminal"
    assert done["call_status"] == "completed"
    assert done["customer_details"]["status"] == "completed"
    assert done["recordings"][0]["url"].endswith(f"{data['call_sid']}.mp3")


def test_call_details_with_details_true_include_leg_statuses(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    sid = exotel.post(f"{paths.v1}/connect.json", data=connect_form(To="+919811111111")).json()[
        "Call"
    ]["Sid"]
    control.wait_for_call(sid)
    as_json = exotel.get(f"{paths.v1}/{sid}.json", params={"details": "true"}).json()["Call"]
    xml = ET.fromstring(exotel.get(f"{paths.v1}/{sid}", params={"details": "true"}).text)
    missing = exotel.get(f"{paths.v1}/{'f' * 32}.json")

    assert as_json["Status"] == "busy"
    assert as_json["Details"]["Leg1Status"] == "completed"
    assert as_json["Details"]["Leg2Status"] == "busy"
    assert as_json["Details"]["ConversationDuration"] == 0
    assert [leg["Leg"]["Id"] for leg in as_json["Details"]["Legs"]] == ["1", "2"]
    assert xml.findtext("Call/Details/Leg2Status") == "busy"
    assert [leg.findtext("Id") for leg in xml.findall("Call/Details/Legs/Leg")] == ["1", "2"]
    assert missing.status_code == 404
    assert missing.json()["RestException"]["Status"] == 404


def test_bulk_call_details_list_only_ended_calls_matching_filters(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    done = exotel.post(f"{paths.v1}/connect.json", data=connect_form(To="+919811122222"))
    ongoing = exotel.post(f"{paths.v1}/connect.json", data=connect_form(To="+919811155555"))
    done_sid, ongoing_sid = done.json()["Call"]["Sid"], ongoing.json()["Call"]["Sid"]
    control.wait_for_call(done_sid)
    bulk = exotel.get(f"{paths.v1}.json", params={"Sid": f"{done_sid},{ongoing_sid}"}).json()
    by_status = exotel.get(
        f"{paths.v1}.json", params={"Status": "no-answer", "To": "+919811122222"}
    ).json()
    xml = ET.fromstring(exotel.get(paths.v1, params={"Sid": done_sid}).text)
    control.end_call(ongoing_sid)

    assert [call["Sid"] for call in bulk["Calls"]] == [done_sid]
    assert bulk["Metadata"]["Total"] == 1
    assert done_sid in [call["Sid"] for call in by_status["Calls"]]
    assert all(call["Status"] == "no-answer" for call in by_status["Calls"])
    assert xml.findtext("Metadata/Total") == "1"
    assert xml.findtext("Call/Sid") == done_sid
