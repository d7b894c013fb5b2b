"""CallConnect maps onto each Exotel API's own field names (../shared/exotel-api/)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from contracts.commands import CallConnect
from services.executor.mapping import (
    CallbackTarget,
    UnsupportedOption,
    build_connect_request,
)

CALLBACK = "https://voicebus.example/exotel/callbacks/tok?command_id=c-1&account=default&api=v1"


def command(**fields: object) -> CallConnect:
    base: dict[str, object] = {
        "command_id": "c-1",
        "from": "+919876543210",
        "to": "+919812345678",
        "caller_id": "08047112345",
    }
    return CallConnect.model_validate(base | fields)


def test_v1_form_uses_exotel_parameter_names_and_indexed_callback_events() -> None:
    request = build_connect_request(
        command(record=True, time_limit=600, custom_field="order-42", recording_channels="dual"),
        api="v1",
        callback_url=CALLBACK,
    )
    assert request.form == {
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
    request = build_connect_request(
        command(to=None, flow_url=flow), api="v1", callback_url=CALLBACK
    )
    assert request.form["Url"] == flow
    assert "To" not in request.form
    assert not any(k.startswith("StatusCallbackEvents") for k in request.form)


def test_v3_body_nests_from_to_recording_and_status_callbacks() -> None:
    request = build_connect_request(
        command(record=True, recording_channels="single", state_management=True, time_out=45),
        api="v3",
        callback_url=CALLBACK,
    )
    assert request.body == {
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
    request = build_connect_request(command(record=True), api="v2", callback_url=CALLBACK)
    assert request.body["from"] == {"user_contact_uri": "+919876543210"}
    assert request.body["to"] == {"customer_contact_uri": "+919812345678"}
    assert request.body["recording"] is True


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
