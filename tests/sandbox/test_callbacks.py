"""Status callbacks: answered and terminal events, in every API's shape and encoding."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from services.sandbox.testing import CallbackReceiver, ReceivedCallback, SandboxControl
from tests.sandbox.helpers import Paths, connect_form, v3_body

V1_TERMINAL_KEYS = {
    "CallSid",
    "EventType",
    "DateCreated",
    "DateUpdated",
    "Status",
    "To",
    "From",
    "PhoneNumberSid",
    "StartTime",
    "EndTime",
    "Direction",
    "RecordingUrl",
    "ConversationDuration",
    "Legs[0][Status]",
    "Legs[0][OnCallDuration]",
    "Legs[1][Status]",
    "Legs[1][OnCallDuration]",
}


def _for(sid: str, key: str = "CallSid") -> Callable[[ReceivedCallback], bool]:
    def match(item: ReceivedCallback) -> bool:
        data = item.data
        if key in data:
            return bool(data[key] == sid)
        details = data.get("call_details", {}) if isinstance(data, dict) else {}
        return sid in (details.get("sid"), details.get("call_sid"))

    return match


def test_v1_connect_sends_two_answered_and_one_terminal_multipart_callback(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver, control: SandboxControl
) -> None:
    form = connect_form(
        StatusCallback=receiver.url("/cb", command_id="cmd-1"),
        CustomField="order-7",
        Record="true",
        **{"StatusCallbackEvents[0]": "terminal", "StatusCallbackEvents[1]": "answered"},
    )
    sid = exotel.post(f"{paths.v1}/connect.json", data=form).json()["Call"]["Sid"]
    got = receiver.wait_for(_for(sid), count=3)
    answered_agent, answered_customer, terminal = (item.form or {} for item in got)

    assert all(item.content_type.startswith("multipart/form-data") for item in got)
    assert all(item.method == "POST" and item.query == {"command_id": "cmd-1"} for item in got)
    assert answered_agent["EventType"] == "answered"
    assert answered_agent["Status"] == "in-progress"
    assert answered_agent["Legs[0][Status]"] == "in-progress"
    assert answered_agent["Legs[1][Status]"] == ""
    assert "CustomField" not in answered_agent
    assert answered_customer["EventType"] == "answered"
    assert answered_customer["Legs[1][Status]"] == "in-progress"
    assert set(terminal) == V1_TERMINAL_KEYS | {"CustomField"}
    assert terminal["EventType"] == "terminal"
    assert terminal["Status"] == "completed"
    assert terminal["Legs[0][Status]"] == "completed"
    assert terminal["Legs[1][Status]"] == "completed"
    assert int(terminal["ConversationDuration"]) >= 1
    assert int(terminal["Legs[0][OnCallDuration]"]) >= int(terminal["Legs[1][OnCallDuration]"])
    assert terminal["CustomField"] == "order-7"
    assert terminal["RecordingUrl"].endswith(f"/{sid}.mp3")
    assert terminal["Direction"] == "outbound-api"
    assert len(terminal["DateCreated"]) == len("2019-04-08 03:17:59")
    view = control.wait_for_callbacks_settled(sid)
    assert [cb["attempts"][0]["status_code"] for cb in view["callbacks"]] == [200, 200, 200]


def test_v1_json_callbacks_carry_a_legs_array(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver
) -> None:
    form = connect_form(
        To="+919811111111",
        StatusCallback=receiver.url("/cb"),
        StatusCallbackContentType="application/json",
        **{"StatusCallbackEvents[0]": "terminal"},
    )
    sid = exotel.post(f"{paths.v1}/connect.json", data=form).json()["Call"]["Sid"]
    (terminal,) = receiver.wait_for(_for(sid))

    assert terminal.content_type == "application/json"
    body = terminal.json
    assert body["EventType"] == "terminal"
    assert body["Status"] == "busy"
    assert body["Legs"] == [
        {"OnCallDuration": body["Legs"][0]["OnCallDuration"], "Status": "completed"},
        {"OnCallDuration": 0, "Status": "busy"},
    ]
    assert body["ConversationDuration"] == 0
    assert body["RecordingUrl"] is None


def test_agent_that_does_not_answer_leaves_the_customer_leg_unattempted(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver
) -> None:
    form = connect_form(
        From="+919800012222",
        StatusCallback=receiver.url("/cb"),
        **{"StatusCallbackEvents[0]": "terminal", "StatusCallbackEvents[1]": "answered"},
    )
    sid = exotel.post(f"{paths.v1}/connect.json", data=form).json()["Call"]["Sid"]
    (terminal,) = receiver.wait_for(_for(sid))

    assert terminal.form is not None
    assert terminal.form["Status"] == "no-answer"
    assert terminal.form["Legs[0][Status]"] == "no-answer"
    assert terminal.form["Legs[1][Status]"] == ""
    assert terminal.form["EventType"] == "terminal"


def test_without_subscribed_events_v1_sends_only_the_four_default_parameters(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver
) -> None:
    form = connect_form(To="+919811133333", StatusCallback=receiver.url("/cb"))
    sid = exotel.post(f"{paths.v1}/connect.json", data=form).json()["Call"]["Sid"]
    (only,) = receiver.wait_for(_for(sid))

    assert only.form is not None
    assert set(only.form) == {"CallSid", "Status", "RecordingUrl", "DateUpdated"}
    assert only.form["Status"] == "failed"


def test_v2_callbacks_are_json_event_details_and_call_details(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver
) -> None:
    url = receiver.url("/v2cb")
    body = {
        "from": {"user_contact_uri": "+919800012345"},
        "to": {"customer_contact_uri": "+919811154321"},
        "virtual_number": "+918047112345",
        "custom_field": "v2-field",
        "status_callback": [{"event": "answered", "url": url}, {"event": "terminal", "url": url}],
    }
    sid = exotel.post(paths.v2, json=body).json()["response"]["data"]["call_sid"]
    first, second, terminal = (item.json for item in receiver.wait_for(_for(sid), count=3))

    assert first["event_details"] == {"event_type": "answered"}
    assert first["call_details"]["assigned_agent_details"]["status"] == "in-progress"
    assert first["call_details"]["customer_details"]["status"] is None
    assert second["call_details"]["customer_details"]["status"] == "in-progress"
    assert terminal["event_details"] == {"event_type": "terminal"}
    assert terminal["call_details"]["call_state"] == "terminal"
    assert terminal["call_details"]["call_status"] == "completed"
    assert terminal["call_details"]["custom_field"] == "v2-field"
    assert "T" in terminal["call_details"]["end_time"]


def test_v3_callbacks_honour_each_entrys_method_and_content_type(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver
) -> None:
    body = v3_body(
        to={"contact_uri": "+919811122222"},
        status_callback=[
            {"event": "answered", "url": receiver.url("/answered", command_id="c3")},
            {"event": "terminal", "url": receiver.url("/get"), "method": "GET"},
            {
                "event": "terminal",
                "url": receiver.url("/multi"),
                "content_type": "multipart/form-data",
            },
        ],
    )
    created = exotel.post(paths.v3, json=body)
    sid = created.json()["response"]["call_details"]["sid"]
    got = receiver.wait_for(lambda item: sid in str(item.data) or sid in str(item.query), count=3)
    by_path = {item.path: item for item in got}

    answered = by_path["/answered"]
    assert answered.json["event_details"]["event_type"] == "answered"
    assert answered.json["call_details"]["state"] == "active"
    assert answered.query == {"command_id": "c3"}
    as_get = by_path["/get"]
    assert as_get.method == "GET"
    assert as_get.query["event_details[event_type]"] == "terminal"
    assert as_get.query["call_details[sid]"] == sid
    assert as_get.query["call_details[status]"] == "to_leg_unanswered"
    multi = by_path["/multi"]
    assert multi.content_type.startswith("multipart/form-data")
    assert multi.form is not None
    assert multi.form["call_details[state]"] == "terminal"
    assert multi.form["call_details[created_time]"].endswith("+05:30")


def test_agent_that_is_busy_ends_a_v3_call_as_from_leg_unanswered(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver
) -> None:
    body = v3_body(
        **{"from": {"contact_uri": "+919800011111"}},
        status_callback=[{"event": "terminal", "url": receiver.url("/v3t")}],
    )
    sid = exotel.post(paths.v3, json=body).json()["response"]["call_details"]["sid"]
    (terminal,) = receiver.wait_for(_for(sid))

    assert terminal.json["call_details"]["status"] == "from_leg_unanswered"
    assert terminal.json["call_details"]["total_talk_time"] == 0


def test_a_callback_not_answered_200_is_retried_twice(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver, control: SandboxControl
) -> None:
    receiver.respond_with(500, 503)
    form = connect_form(
        StatusCallback=receiver.url("/retry"), **{"StatusCallbackEvents[0]": "terminal"}
    )
    sid = exotel.post(f"{paths.v1}/connect.json", data=form).json()["Call"]["Sid"]
    got = receiver.wait_for(_for(sid), count=3)
    view = control.wait_for_callbacks_settled(sid)

    assert [item.form == got[0].form for item in got] == [True, True, True]
    (callback,) = view["callbacks"]
    assert [a["status_code"] for a in callback["attempts"]] == [500, 503, 200]
    assert callback["delivered"] is True


def test_a_callback_that_never_succeeds_gives_up_after_three_attempts(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver, control: SandboxControl
) -> None:
    receiver.respond_with(500, 500, 500, 500)
    form = connect_form(
        StatusCallback=receiver.url("/fail"), **{"StatusCallbackEvents[0]": "terminal"}
    )
    sid = exotel.post(f"{paths.v1}/connect.json", data=form).json()["Call"]["Sid"]
    view = control.wait_for_callbacks_settled(sid)

    (callback,) = view["callbacks"]
    assert len(callback["attempts"]) == 3
    assert callback["delivered"] is False
