"""Every Exotel request voicebus sends with an effect, from its command: call.connect onto
each API's own field names (Exotel's v1 Calls/connect and v2/v3 CCM call documents),
lwb.action and leg.hangup onto the LWB legs API's forms."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from contracts.commands import ApiVersion, CallConnect, LwbAction
from services.executor.mapping import CallbackTarget, legs
from services.executor.mapping.connect import UnsupportedOption, build_connect_request
from services.exotel.requests import CcmCallRequest, V1ConnectRequest

CALLBACK = "https://voicebus.example/exotel/callbacks/tok?command_id=c-1&account=default&api=v1"


def command(**fields: object) -> CallConnect:
    base: dict[str, object] = {
        "command_id": "c-1",
        "from": "+919876543210",
        "to": "+919812345678",
        "caller_id": "08047112345",
    }
    return CallConnect.model_validate(base | fields)


def v1_form(connect: CallConnect) -> dict[str, str]:
    request = build_connect_request(connect, api="v1", callback_url=CALLBACK)
    assert isinstance(request, V1ConnectRequest)
    return dict(request.form)


def ccm_body(connect: CallConnect, api: ApiVersion) -> dict[str, object]:
    request = build_connect_request(connect, api=api, callback_url=CALLBACK)
    assert isinstance(request, CcmCallRequest)
    assert request.api == api
    return dict(request.body)


def test_v1_form_uses_exotel_parameter_names_and_indexed_callback_events() -> None:
    form = v1_form(
        command(record=True, time_limit=600, custom_field="order-42", recording_channels="dual")
    )
    assert form == {
        "From": "+919876543210",
        "To": "+919812345678",
        "CallerId": "08047112345",
        "Record": "true",
        "RecordingChannels": "dual",
        "TimeLimit": "600",
        "CustomField": "order-42",
        "StatusCallback": CALLBACK,
        "StatusCallbackContentType": "multipart/form-data",
        "StatusCallbackEvents[0]": "answered",
        "StatusCallbackEvents[1]": "terminal",
    }


def test_v1_connect_to_flow_sends_url_instead_of_to() -> None:
    flow = "http://my.exotel.com/Exotel/exoml/start_voice/926"
    form = v1_form(command(to=None, flow_url=flow))
    assert form["Url"] == flow
    assert "To" not in form
    assert not any(k.startswith("StatusCallbackEvents") for k in form)


def test_v3_body_nests_from_to_recording_and_status_callbacks() -> None:
    body = ccm_body(
        command(record=True, recording_channels="single", state_management=True, time_out=45),
        "v3",
    )
    assert body == {
        "from": {"contact_uri": "+919876543210", "state_management": True},
        "to": {"contact_uri": "+919812345678"},
        "virtual_number": "08047112345",
        "recording": {"record": True, "channels": "single"},
        "attempt_time_out": 45,
        "status_callback": [
            {
                "event": "answered",
                "url": CALLBACK,
                "method": "POST",
                "content_type": "application/json",
            },
            {
                "event": "terminal",
                "url": CALLBACK,
                "method": "POST",
                "content_type": "application/json",
            },
        ],
    }


def test_v2_body_uses_user_and_customer_contact_uris() -> None:
    body = ccm_body(command(record=True), "v2")
    assert body["from"] == {"user_contact_uri": "+919876543210"}
    assert body["to"] == {"customer_contact_uri": "+919812345678"}
    assert body["recording"] is True


@pytest.mark.parametrize(
    ("fields", "api", "field"),
    [
        ({"streaming": {"url": "wss://x"}}, "v1", "streaming"),
        ({"state_management": True}, "v2", "state_management"),
        ({"call_type": "trans"}, "v3", "call_type"),
    ],
)
def test_an_option_the_api_does_not_offer_is_refused_by_name(
    fields: dict[str, object], api: str, field: str
) -> None:
    with pytest.raises(UnsupportedOption) as caught:
        build_connect_request(command(**fields), api=api, callback_url=CALLBACK)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_callback_url_carries_correlation_without_losing_characters() -> None:
    url = CallbackTarget("https://in.example/", "secret-token-123456").url(
        command_id="a b&c=d", account="default", api="v3"
    )
    parts = urlsplit(url)
    assert parts.path == "/exotel/callbacks/secret-token-123456"
    assert parse_qs(parts.query) == {
        "command_id": ["a b&c=d"],
        "account": ["default"],
        "api": ["v3"],
    }


# ------------------------------------------------------------------ the legs API


def lwb(**fields: object) -> LwbAction:
    base = {"command_id": "cmd-1", "call_sid": "call0001", "supervisor": "+919800000001"}
    return LwbAction.model_validate(base | fields)


def test_a_monitor_leg_is_created_with_the_documented_fields() -> None:
    request = legs.monitor_leg(
        lwb(action="listen", custom_field="team-7"),
        target_leg_sid="agent1",
        callback_url=CALLBACK,
    )
    assert request.call_sid == "call0001"
    assert request.form == {
        "action": "listen",
        "PhoneNumber": "09800000001",
        "TargetLegSid": "agent1",
        "StatusCallback": CALLBACK,
        "StatusCallbackContentType": "multipart/form-data",
        "StatusCallbackEvents[0]": "terminal",
        "CustomField": "team-7",
    }


def test_a_monitor_leg_asks_for_json_callbacks_when_configured() -> None:
    request = legs.monitor_leg(
        lwb(action="barge"),
        target_leg_sid="agent1",
        callback_url=CALLBACK,
        callback_content_type="application/json",
    )
    assert request.form["StatusCallbackContentType"] == "application/json"
    assert "CustomField" not in request.form


def test_an_upgrade_puts_the_new_action_and_a_whisper_its_target() -> None:
    barge = legs.monitor_upgrade("call0001", "mon1", "barge")
    whisper = legs.monitor_upgrade("call0001", "mon1", "whisper", target_leg_sid="agent1")
    assert (barge.call_sid, barge.leg_sid, dict(barge.form)) == (
        "call0001",
        "mon1",
        {"action": "barge"},
    )
    assert whisper.form == {"action": "whisper", "TargetLegSid": "agent1"}


def test_a_hangup_puts_action_hangup_on_the_leg() -> None:
    request = legs.hangup("call0001", "cust1")
    assert (request.call_sid, request.leg_sid, dict(request.form)) == (
        "call0001",
        "cust1",
        {"action": "hangup"},
    )


# ------------------------------------------------------------------ connect to a flow

FLOW = "http://my.exotel.com/Exotel/exoml/start_voice/926"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("record", True),
        ("record", False),
        ("recording_channels", "dual"),
        ("recording_format", "mp3"),
        ("wait_url", "https://example.com/wait.wav"),
        ("start_playback_to", "both"),
        ("start_playback_value", "https://example.com/hello.wav"),
        ("status_events", ["terminal"]),
    ],
)
def test_connect_to_a_flow_refuses_what_the_flow_api_does_not_take(
    name: str, value: object
) -> None:
    with pytest.raises(UnsupportedOption) as refused:
        v1_form(command(to=None, flow_url=FLOW, **{name: value}))
    assert refused.value.field == name
    assert "call flow" in str(refused.value)


def test_connect_to_a_flow_takes_its_documented_options() -> None:
    form = v1_form(
        command(
            to=None,
            flow_url=FLOW,
            call_type="trans",
            time_limit=600,
            time_out=30,
            custom_field="order-7",
        )
    )
    assert {k: form[k] for k in ("Url", "CallType", "TimeLimit", "TimeOut", "CustomField")} == {
        "Url": FLOW,
        "CallType": "trans",
        "TimeLimit": "600",
        "TimeOut": "30",
        "CustomField": "order-7",
    }
    assert not [k for k in form if k.startswith("StatusCallbackEvents")]


def test_custom_field_says_where_a_flow_gets_it() -> None:
    description = CallConnect.model_fields["custom_field"].description or ""
    assert "Passthru" in description


# ------------------------------------------------------------------ the LWB number format


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("9052161119", "09052161119"),
        ("+919052161119", "09052161119"),
        ("+918030752400", "08030752400"),
        ("09052161119", "09052161119"),
        ("08030752400", "08030752400"),
        ("919052161119", "919052161119"),
        ("+6591234567", "+6591234567"),
        ("+91905216111", "+91905216111"),
        ("5052161119", "5052161119"),
        ("sip:sup@example.com", "sip:sup@example.com"),
    ],
)
def test_the_supervisors_number_in_the_lwb_documents_format(given: str, sent: str) -> None:
    assert legs.lwb_phone_number(given) == sent


def test_lwb_requests_carry_the_accounts_encoding() -> None:
    request = legs.monitor_leg(
        lwb(action="barge"), target_leg_sid="agent1", callback_url=CALLBACK, encoding="json"
    )
    assert request.encoding == "json"
    assert request.form["StatusCallbackEvents[0]"] == "terminal", "as the document's sample"
    upgrade = legs.monitor_upgrade("call0001", "mon1", "whisper", encoding="json")
    assert upgrade.encoding == "json"
    assert legs.hangup("call0001", "leg1").form == {"action": "hangup"}
