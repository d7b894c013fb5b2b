"""ExotelClient against a fake Exotel (httpx.MockTransport): URLs, auth, bodies, the rate
limiter's slot, errors and secrecy."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import httpx
import pytest
from structlog.testing import capture_logs

from services.exotel import (
    ExotelError,
    ExotelInvalidResponse,
    ExotelNotFound,
    ExotelRateLimited,
    ExotelRejected,
    ExotelTimeout,
    ExotelUnavailable,
)
from services.exotel.client import Slot
from services.exotel.requests import (
    CcmCallRequest,
    HangupRequest,
    MonitorLegRequest,
    MonitorUpgradeRequest,
    V1ConnectRequest,
)
from tests.exotel.conftest import (
    API_KEY,
    API_TOKEN,
    SID,
    ClientFactory,
    Harness,
    sample,
)

AGENT = "+919812345678"
CUSTOMER = "+919887654321"
CONNECT_FORM = {
    "From": AGENT,
    "To": CUSTOMER,
    "CallerId": "08030752400",
    "StatusCallback": "https://voicebus.example/exotel/callbacks/tok?command_id=c1",
    "StatusCallbackEvents[0]": "terminal",
    "StatusCallbackEvents[1]": "answered",
    "StatusCallbackContentType": "application/json",
    "Record": "true",
}
CONNECT = V1ConnectRequest(CONNECT_FORM)
BASIC = "Basic " + base64.b64encode(f"{API_KEY}:{API_TOKEN}".encode()).decode()


def form_of(request: httpx.Request) -> dict[str, str]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


# ---------------------------------------------------------------- v1 connect


async def test_connect_posts_the_callers_form_to_the_v1_json_connect_url(harness: Harness) -> None:
    harness.exotel.reply(200, sample("v1_connect_response.json"))

    placed = await harness.client.place_call(CONNECT)

    request = harness.exotel.last
    assert request.method == "POST"
    assert str(request.url) == f"https://api.exotel.com/v1/Accounts/{SID}/Calls/connect.json"
    assert form_of(request) == CONNECT_FORM
    assert placed.call_sid == "c5797dcbaaeed7678c4062a4a3ed2f8a"
    assert placed.status == "in-progress"


async def test_every_request_carries_basic_auth_and_asks_for_json(harness: Harness) -> None:
    harness.exotel.reply(200, sample("v1_connect_response.json"))
    await harness.client.place_call(CONNECT)
    request = harness.exotel.last
    assert request.headers["authorization"] == BASIC
    assert request.headers["accept"] == "application/json"
    assert request.url.userinfo == b""


async def test_a_mumbai_account_calls_the_in_host(harness_factory: ClientFactory) -> None:
    harness = harness_factory(region="mumbai")
    harness.exotel.reply(200, sample("v1_connect_response.json"))
    await harness.client.place_call(CONNECT)
    assert harness.exotel.last.url.host == "api.in.exotel.com"


async def test_a_base_url_override_sends_v1_there(harness_factory: ClientFactory) -> None:
    harness = harness_factory(base_url="http://127.0.0.1:8090")
    harness.exotel.reply(200, sample("v1_connect_response.xml"))
    placed = await harness.client.place_call(CONNECT)
    assert str(harness.exotel.last.url) == (
        f"http://127.0.0.1:8090/v1/Accounts/{SID}/Calls/connect.json"
    )
    assert placed.call_sid == "06caf2045009d50fbb1da5b5926d2e2f"


async def test_connect_waits_on_the_voice_throttle_and_reports_a_bounded_label(
    harness: Harness,
) -> None:
    harness.exotel.reply(200, sample("v1_connect_response.json"))
    await harness.client.place_call(CONNECT)
    assert harness.throttle.acquired == [("default", "voice")]
    (observed,) = harness.observer.calls
    assert observed["account"] == "default"
    assert observed["endpoint"] == "v1.connect"
    assert observed["method"] == "POST"
    assert observed["status"] == 200
    assert observed["seconds"] >= 0


# ---------------------------------------------------------------- v2 / v3 create


@pytest.mark.parametrize(
    ("api", "fixture", "sid"),
    [
        ("v3", "v3_create_call_response.json", "3f3fedf8f0928550a60bfa6302dc16b2"),
        ("v2", "v2_create_call_response.json", "9133c5d2ad930f4c7ca43645e535157d"),
    ],
)
async def test_a_ccm_call_posts_json_to_the_versioned_calls_url(
    harness: Harness, api: Any, fixture: str, sid: str
) -> None:
    body = {
        "from": {"contact_uri": AGENT, "state_management": True},
        "to": {"contact_uri": CUSTOMER},
        "virtual_number": "+912241499102",
        "status_callback": [{"event": "terminal", "url": "https://voicebus.example/cb"}],
    }
    harness.exotel.reply(200, sample(fixture))

    placed = await harness.client.place_call(CcmCallRequest(api, body))

    request = harness.exotel.last
    assert str(request.url) == f"https://ccm-api.exotel.com/{api}/accounts/{SID}/calls"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == body
    assert request.headers["authorization"] == BASIC
    assert placed.call_sid == sid
    assert harness.throttle.acquired == [("default", "voice")]
    assert harness.observer.calls[0]["endpoint"] == f"{api}.calls.create"


async def test_a_ccm_base_url_override_and_mumbai_region_are_honoured(
    harness_factory: ClientFactory,
) -> None:
    mumbai = harness_factory(region="mumbai")
    mumbai.exotel.reply(200, sample("v3_create_call_response.json"))
    await mumbai.client.place_call(CcmCallRequest("v3", {}))
    assert mumbai.exotel.last.url.host == "ccm-api.in.exotel.com"

    sandbox = harness_factory(ccm_base_url="http://localhost:8090")
    sandbox.exotel.reply(200, sample("v3_create_call_response.json"))
    await sandbox.client.place_call(CcmCallRequest("v3", {}))
    assert str(sandbox.exotel.last.url) == f"http://localhost:8090/v3/accounts/{SID}/calls"


async def test_a_busy_agent_device_is_rejected_with_exotel_code_10706(harness: Harness) -> None:
    harness.exotel.reply(409, sample("synth_v3_error_busy.json"))
    with pytest.raises(ExotelRejected) as excinfo:
        await harness.client.place_call(CcmCallRequest("v3", {}))
    err = excinfo.value
    assert (err.http_status, err.exotel_code, err.retryable) == (409, "10706", False)
    assert err.message == "User device is currently busy"
    assert harness.observer.calls[0]["status"] == 409


async def test_a_failure_reported_inside_a_200_is_still_an_error(harness: Harness) -> None:
    harness.exotel.reply(200, sample("synth_v3_error_busy.json"))
    with pytest.raises(ExotelRejected) as excinfo:
        await harness.client.place_call(CcmCallRequest("v3", {}))
    assert excinfo.value.exotel_code == "10706"


async def test_an_unknown_ccm_api_is_a_programming_error(harness: Harness) -> None:
    with pytest.raises(ValueError, match="v2"):
        await harness.client.place_call(CcmCallRequest("v1", {}))  # type: ignore[arg-type]
    assert harness.exotel.requests == []


# ---------------------------------------------------------------- call details


async def test_v1_call_details_ask_for_leg_details_and_count_as_a_get(harness: Harness) -> None:
    harness.exotel.reply(200, sample("v1_call_details_details_corrected.json"))

    details = await harness.client.call_details("b6cfaf5f5cef3ca0fc937749ef96d245", "v1")

    request = harness.exotel.last
    assert request.method == "GET"
    assert request.url.path == f"/v1/Accounts/{SID}/Calls/b6cfaf5f5cef3ca0fc937749ef96d245.json"
    assert request.url.params["details"] == "true"
    assert details.conversation_duration == 8
    assert len(details.legs) == 2
    assert harness.throttle.acquired == [("default", "get")]
    assert harness.observer.calls[0]["endpoint"] == "v1.calls.get"


async def test_the_doc_details_sample_with_its_missing_comma_is_an_invalid_response(
    harness: Harness,
) -> None:
    harness.exotel.reply(200, sample("v1_call_details_details.json"))
    with pytest.raises(ExotelInvalidResponse, match="not valid JSON") as excinfo:
        await harness.client.call_details("b6cfaf5f5cef3ca0fc937749ef96d245", "v1")
    assert excinfo.value.maybe_sent is True
    assert excinfo.value.retryable is False
    assert excinfo.value.http_status == 200


@pytest.mark.parametrize("api", ["v2", "v3"])
async def test_ccm_call_details_get_the_versioned_call_url(harness: Harness, api: Any) -> None:
    fixture = "v3_call_details_terminal.json" if api == "v3" else "v2_call_details_terminal.json"
    harness.exotel.reply(200, sample(fixture))
    details = await harness.client.call_details("cabfb1dfa8c5e1c7f2c458423b7716b3", api)
    assert str(harness.exotel.last.url) == (
        f"https://ccm-api.exotel.com/{api}/accounts/{SID}/calls/cabfb1dfa8c5e1c7f2c458423b7716b3"
    )
    assert details.is_terminal
    assert harness.observer.calls[0]["endpoint"] == f"{api}.calls.get"
    assert harness.throttle.acquired == [("default", "get")]


async def test_call_details_default_to_the_accounts_api(harness_factory: ClientFactory) -> None:
    harness = harness_factory(api="v3")
    harness.exotel.reply(200, sample("v3_call_details_active.json"))
    details = await harness.client.call_details("cabfb1dfa8c5e1c7f2c458423b7716b3")
    assert details.api == "v3"
    assert harness.exotel.last.url.path.startswith("/v3/")


async def test_an_unknown_call_is_not_found(harness: Harness) -> None:
    harness.exotel.reply(404, sample("synth_v2_error_call_not_found.json"))
    with pytest.raises(ExotelNotFound) as excinfo:
        await harness.client.call_details("abc", "v2")
    assert excinfo.value.exotel_code == "3043"


@pytest.mark.parametrize("bad", ["../../Accounts/other", "a b", "", "x" * 129, "sid?x=1"])
async def test_a_malformed_sid_is_rejected_before_anything_is_sent(
    harness: Harness, bad: str
) -> None:
    harness.exotel.reply(200, sample("v1_call_details.json"))
    with pytest.raises(ExotelRejected, match="invalid call_sid"):
        await harness.client.call_details(bad, "v1")
    assert harness.exotel.requests == []
    assert harness.throttle.acquired == []


# ---------------------------------------------------------------- bulk call details


async def test_bulk_details_send_filters_in_the_accounts_zone(harness: Harness) -> None:
    harness.exotel.reply(200, json.dumps({"Metadata": {"NextPageUri": None}, "Calls": []}))

    calls = await harness.client.bulk_call_details(
        from_numbers=[AGENT],
        to_numbers=[CUSTOMER, "+919800000000"],
        created_from=datetime(2025, 1, 1, 0, 0, tzinfo=UTC),
        created_to=datetime(2025, 1, 1, 18, 29, 59, tzinfo=UTC),
        page_size=50,
    )

    assert calls == []
    request = harness.exotel.last
    assert request.url.path == f"/v1/Accounts/{SID}/Calls.json"
    params = parse_qs(request.url.query.decode())
    assert params["From"] == [AGENT]
    assert params["To"] == [f"{CUSTOMER},+919800000000"]
    assert params["DateCreated"] == ["gte:2025-01-01 05:30:00;lte:2025-01-01 23:59:59"]
    assert params["PageSize"] == ["50"]
    assert params["details"] == ["true"]
    assert b"%3B" in request.url.query  # ';' is URL-encoded, as the doc asks
    assert harness.observer.calls[0]["endpoint"] == "v1.calls.list"
    assert harness.throttle.acquired == [("default", "get")]


async def test_bulk_details_follow_next_page_uri_until_it_runs_out(harness: Harness) -> None:
    next_uri = f"/v1/Accounts/{SID}/Calls.json?PageSize=1&After=abc%3D%3D"
    pages = [
        {"Metadata": {"NextPageUri": next_uri}, "Calls": [{"Sid": "call1", "Status": "completed"}]},
        {"Metadata": {"NextPageUri": None}, "Calls": [{"Sid": "call2", "Status": "busy"}]},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[len(harness.exotel.requests) - 1])

    harness.exotel.handler = handler
    calls = await harness.client.bulk_call_details(page_size=1)

    assert [c.call_sid for c in calls] == ["call1", "call2"]
    second = harness.exotel.requests[1]
    assert str(second.url) == f"https://api.exotel.com{next_uri}"
    assert second.headers["authorization"] == BASIC
    assert len(harness.throttle.acquired) == 2


async def test_bulk_details_refuse_a_next_page_on_another_host(harness: Harness) -> None:
    harness.exotel.reply(
        200,
        json.dumps(
            {
                "Metadata": {"NextPageUri": "https://evil.example/v1/Accounts/x/Calls.json"},
                "Calls": [{"Sid": "call1"}],
            }
        ),
    )
    with pytest.raises(ExotelInvalidResponse, match="NextPageUri"):
        await harness.client.bulk_call_details()
    assert len(harness.exotel.requests) == 1


async def test_bulk_details_stop_after_max_pages(harness: Harness) -> None:
    counter = iter(range(100))

    def handler(request: httpx.Request) -> httpx.Response:
        n = next(counter)
        return httpx.Response(
            200,
            json={
                "Metadata": {"NextPageUri": f"/v1/Accounts/{SID}/Calls.json?After={n}"},
                "Calls": [{"Sid": f"call{n}"}],
            },
        )

    harness.exotel.handler = handler
    calls = await harness.client.bulk_call_details(max_pages=3)
    assert len(calls) == 3
    assert len(harness.exotel.requests) == 3


async def test_bulk_details_refuse_naive_datetimes_and_too_many_numbers(harness: Harness) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await harness.client.bulk_call_details(created_from=datetime(2025, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="at most 5"):
        await harness.client.bulk_call_details(from_numbers=[str(i) for i in range(6)])
    with pytest.raises(ValueError, match="page_size"):
        await harness.client.bulk_call_details(page_size=101)
    assert harness.exotel.requests == []


# ---------------------------------------------------------------- LWB legs


async def test_active_legs_get_the_activelegs_json_url(harness: Harness) -> None:
    harness.exotel.reply(200, sample("activelegs.json"))
    legs = await harness.client.active_legs("call123")
    assert harness.exotel.last.url.path == f"/v1/Accounts/{SID}/Calls/call123/activelegs.json"
    assert [leg.origin for leg in legs] == ["outbound", "outbound-dial", "monitor"]
    assert harness.throttle.acquired == [("default", "get")]
    assert harness.observer.calls[0]["endpoint"] == "v1.activelegs"


async def test_active_legs_of_a_call_no_longer_in_progress_are_not_found(
    harness: Harness,
) -> None:
    harness.exotel.reply(404, sample("restexception_404.xml"), {"content-type": "text/xml"})
    with pytest.raises(ExotelNotFound) as excinfo:
        await harness.client.active_legs("call123")
    assert excinfo.value.message == "given callsid is not in progress"


async def test_a_monitor_leg_is_created_with_the_callers_form(harness: Harness) -> None:
    harness.exotel.reply(200, sample("monitor_leg.xml"))
    form = {"action": "listen", "PhoneNumber": "09052161119", "TargetLegSid": "leg-agent"}

    leg = await harness.client.create_monitor_leg(MonitorLegRequest("call123", form))

    request = harness.exotel.last
    assert request.method == "POST"
    assert request.url.path == f"/v1/Accounts/{SID}/Calls/call123/legs.json"
    assert form_of(request) == form
    assert leg.origin == "monitor"
    assert harness.throttle.acquired == [("default", "voice")]
    assert harness.observer.calls[0]["endpoint"] == "v1.legs.create"


async def test_a_json_monitor_leg_sends_the_same_fields_as_a_json_object(
    harness: Harness,
) -> None:
    harness.exotel.reply(200, sample("monitor_leg.xml"))
    form = {
        "action": "barge",
        "PhoneNumber": "09052161119",
        "TargetLegSid": "leg-agent",
        "StatusCallbackEvents[0]": "terminal",
    }

    await harness.client.create_monitor_leg(MonitorLegRequest("call123", form, "json"))

    request = harness.exotel.last
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == form, "the LWB document's sample shape"


async def test_a_json_upgrade_sends_a_json_object(harness: Harness) -> None:
    harness.exotel.reply(200, sample("monitor_leg_upgrade.xml"))
    await harness.client.update_monitor_leg(
        MonitorUpgradeRequest("call123", "leg-mon", {"action": "barge"}, "json")
    )
    request = harness.exotel.last
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"action": "barge"}


async def test_a_monitor_leg_with_a_bad_phone_number_is_rejected(harness: Harness) -> None:
    harness.exotel.reply(400, sample("restexception_400_status.xml"))
    with pytest.raises(ExotelRejected) as excinfo:
        await harness.client.create_monitor_leg(MonitorLegRequest("call123", {"action": "listen"}))
    assert excinfo.value.message == "invalid parameter phonenumber is missing or invalid"


async def test_upgrading_a_monitor_leg_puts_the_action_and_target(harness: Harness) -> None:
    harness.exotel.reply(200, sample("monitor_leg_upgrade.xml"))

    leg = await harness.client.update_monitor_leg(
        MonitorUpgradeRequest(
            "call123", "leg-mon", {"action": "whisper", "TargetLegSid": "leg-agent"}
        )
    )

    request = harness.exotel.last
    assert request.method == "PUT"
    assert request.url.path == f"/v1/Accounts/{SID}/Calls/call123/legs/leg-mon.json"
    assert form_of(request) == {"action": "whisper", "TargetLegSid": "leg-agent"}
    assert leg.last_action == "barge"
    assert harness.throttle.acquired == [("default", "voice")]
    assert harness.observer.calls[0]["endpoint"] == "v1.legs.update"


async def test_upgrading_an_unknown_leg_is_not_found(harness: Harness) -> None:
    harness.exotel.reply(404, sample("restexception_leg_404.xml"))
    with pytest.raises(ExotelNotFound, match="given legsid does not exist"):
        await harness.client.update_monitor_leg(
            MonitorUpgradeRequest("call123", "leg-mon", {"action": "barge"})
        )


async def test_hanging_up_a_leg_puts_action_hangup_form_encoded(harness: Harness) -> None:
    harness.exotel.reply(200, sample("hangup_leg.json"))

    leg = await harness.client.hangup_leg(
        HangupRequest("call123", "leg-agent", {"action": "hangup"})
    )

    request = harness.exotel.last
    assert request.method == "PUT"
    assert request.url.path == f"/v1/Accounts/{SID}/Calls/call123/legs/leg-agent.json"
    assert form_of(request) == {"action": "hangup"}
    assert leg.last_action == "hangup"
    assert harness.throttle.acquired == [("default", "voice")]
    assert harness.observer.calls[0]["endpoint"] == "v1.legs.hangup"


async def test_hanging_up_an_unknown_leg_is_not_found_in_json_too(harness: Harness) -> None:
    harness.exotel.reply(404, sample("restexception_404.json"))
    with pytest.raises(ExotelNotFound, match="not found"):
        await harness.client.hangup_leg(HangupRequest("call123", "leg-x", {"action": "hangup"}))


async def test_completed_call_legs_use_the_legs_family(harness: Harness) -> None:
    harness.exotel.reply(200, sample("completed_call_legs.json"))
    legs = await harness.client.completed_call_legs("call123")
    assert harness.exotel.last.url.path == f"/v1/Accounts/{SID}/Calls/call123/Legs.json"
    assert [leg.on_call_duration for leg in legs] == [25, 5, 4]
    assert harness.throttle.acquired == [("default", "legs")]
    assert harness.observer.calls[0]["endpoint"] == "v1.calls.legs"


async def test_completed_call_legs_errors_keep_exotels_description(harness: Harness) -> None:
    harness.exotel.reply(400, sample("restexception_legs.json"))
    with pytest.raises(ExotelRejected) as excinfo:
        await harness.client.completed_call_legs("call123")
    assert excinfo.value.description == "Please check the callSID passed"


async def test_v3_call_legs_count_as_a_get(harness: Harness) -> None:
    harness.exotel.reply(200, sample("v3_call_legs.json"))
    legs = await harness.client.call_legs_v3("f1ca1057692d586b23b4e7ffcc3216mk")
    assert str(harness.exotel.last.url) == (
        f"https://ccm-api.exotel.com/v3/accounts/{SID}/calls/f1ca1057692d586b23b4e7ffcc3216mk/legs"
    )
    assert len(legs.from_legs) == 2
    assert harness.throttle.acquired == [("default", "get")]
    assert harness.observer.calls[0]["endpoint"] == "v3.calls.legs"


# ---------------------------------------------------------------- rate limits, 5xx


async def test_a_429_with_retry_after_penalises_the_throttle_and_raises_rate_limited(
    harness: Harness,
) -> None:
    harness.exotel.reply(429, b"", {"Retry-After": "5"})
    with pytest.raises(ExotelRateLimited) as excinfo:
        await harness.client.place_call(CONNECT)
    assert excinfo.value.retry_after == 5.0
    assert excinfo.value.retryable is True
    assert excinfo.value.maybe_sent is False
    assert harness.throttle.penalised == [("default", "voice", 5.0)]


async def test_a_rate_limit_exceeded_restexception_penalises_the_right_family(
    harness: Harness,
) -> None:
    harness.exotel.reply(429, sample("synth_restexception_rate_limited.json"))
    with pytest.raises(ExotelRateLimited) as excinfo:
        await harness.client.active_legs("call123")
    assert excinfo.value.exotel_code == "RATE_LIMIT_EXCEEDED"
    assert harness.throttle.penalised == [("default", "get", None)]


async def test_v3_code_10724_penalises_the_get_family(harness: Harness) -> None:
    harness.exotel.reply(429, sample("synth_v3_error_rate_limited.json"))
    with pytest.raises(ExotelRateLimited):
        await harness.client.call_legs_v3("call123")
    assert harness.throttle.penalised == [("default", "get", None)]


async def test_other_errors_do_not_penalise_the_throttle(harness: Harness) -> None:
    harness.exotel.reply(409, sample("synth_v3_error_busy.json"))
    with pytest.raises(ExotelRejected):
        await harness.client.place_call(CcmCallRequest("v3", {}))
    assert harness.throttle.penalised == []


async def test_a_502_html_page_is_unavailable_and_may_have_been_acted_on(
    harness: Harness,
) -> None:
    harness.exotel.reply(502, sample("synth_html_502.html"), {"content-type": "text/html"})
    with pytest.raises(ExotelUnavailable) as excinfo:
        await harness.client.place_call(CONNECT)
    assert excinfo.value.message == "502 Bad Gateway"
    assert excinfo.value.maybe_sent is True


async def test_a_redirect_is_not_followed(harness: Harness) -> None:
    harness.exotel.reply(302, b"", {"Location": "https://evil.example/steal"})
    with pytest.raises(ExotelError):
        await harness.client.place_call(CONNECT)
    assert len(harness.exotel.requests) == 1


# ---------------------------------------------------------------- transport failures


@pytest.mark.parametrize(
    ("exc_type", "maybe_sent"),
    [
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
        (httpx.PoolTimeout, False),
        (httpx.ReadTimeout, True),
        (httpx.WriteTimeout, True),
        (httpx.RemoteProtocolError, True),
        (httpx.ReadError, True),
    ],
)
async def test_transport_failures_raise_timeouts_that_say_whether_exotel_may_have_the_request(
    harness: Harness, exc_type: type[httpx.TransportError], maybe_sent: bool
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("boom", request=request)

    harness.exotel.handler = handler
    with pytest.raises(ExotelTimeout) as excinfo:
        await harness.client.place_call(CONNECT)
    err = excinfo.value
    assert err.maybe_sent is maybe_sent
    assert err.retryable is True
    assert isinstance(err.__cause__, exc_type)
    assert harness.observer.calls == [
        {
            "account": "default",
            "endpoint": "v1.connect",
            "method": "POST",
            "status": None,
            "seconds": harness.observer.calls[0]["seconds"],
        }
    ]


# ---------------------------------------------------------------- invalid answers


async def test_a_200_without_a_call_sid_is_an_invalid_response_that_may_have_placed_a_call(
    harness: Harness,
) -> None:
    harness.exotel.reply(200, json.dumps({"Call": {"Status": "queued"}}))
    with pytest.raises(ExotelInvalidResponse, match=r"v1\.connect: .*Call\.Sid") as excinfo:
        await harness.client.place_call(CONNECT)
    assert excinfo.value.maybe_sent is True


async def test_an_empty_200_is_an_invalid_response(harness: Harness) -> None:
    harness.exotel.reply(200, b"")
    with pytest.raises(ExotelInvalidResponse, match="empty response body"):
        await harness.client.active_legs("call123")


# ------------------------------------------------------- throttle and observer are optional


async def test_a_client_works_without_throttle_or_observer(
    http_factory: Any,
) -> None:
    from services.exotel import ExotelClient
    from tests.exotel.conftest import Exchange, make_account

    exchange = Exchange()
    exchange.reply(200, sample("hangup_leg.xml"))
    client = ExotelClient(make_account(), http_factory(exchange))
    leg = await client.hangup_leg(HangupRequest("call123", "leg1", {"action": "hangup"}))
    assert leg.last_action == "hangup"


async def test_a_request_given_its_slot_does_not_wait_for_the_limiter_again(
    harness: Harness,
) -> None:
    slot = await harness.client.wait_for_slot("voice")
    assert harness.throttle.acquired == [("default", "voice")]
    harness.exotel.reply(200, sample("v1_connect_response.json"))
    await harness.client.place_call(CONNECT, slot=slot)
    assert harness.throttle.acquired == [("default", "voice")], "one grant, one request"


async def test_a_slot_is_good_for_one_request_of_its_family_only(harness: Harness) -> None:
    harness.exotel.reply(200, sample("v1_connect_response.json"))
    slot = await harness.client.wait_for_slot("voice")
    await harness.client.place_call(CONNECT, slot=slot)
    with pytest.raises(ValueError, match="one request only"):
        await harness.client.place_call(CONNECT, slot=slot)
    with pytest.raises(ValueError, match="'get' slot"):
        await harness.client.place_call(CONNECT, slot=Slot("get"))
    assert len(harness.exotel.requests) == 1


async def test_a_failing_observer_never_changes_the_outcome(harness: Harness) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("metrics exploded")

    harness.observer.observe = broken  # type: ignore[method-assign]
    harness.exotel.reply(200, sample("v1_connect_response.json"))
    placed = await harness.client.place_call(CONNECT)
    assert placed.call_sid == "c5797dcbaaeed7678c4062a4a3ed2f8a"


# ---------------------------------------------------------------- secrecy

SECRETS = (API_KEY, API_TOKEN, BASIC.split()[1])
ECHOED_SECRETS = f"bad credentials {API_KEY}:{API_TOKEN} ({BASIC})"


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, sample("synth_v2_error_auth.json")),
        (409, sample("synth_v3_error_busy.json")),
        (429, sample("synth_restexception_rate_limited.json")),
        (500, sample("synth_html_502.html")),
        (404, sample("restexception_404.xml")),
        (200, b"{not json"),
        # Exotel echoing the credentials back must not leak them either.
        (
            401,
            json.dumps({"RestException": {"Code": 401, "Message": f"bad {API_KEY}:{API_TOKEN}"}}),
        ),
    ],
)
async def test_no_exception_string_or_repr_contains_a_secret(
    harness: Harness, status: int, body: bytes | str
) -> None:
    harness.exotel.reply(status, body)
    with pytest.raises(ExotelError) as excinfo:
        await harness.client.place_call(CONNECT)
    err = excinfo.value
    for text in (str(err), repr(err), str(err.args)):
        assert_no_secrets(text)


async def test_transport_error_messages_contain_no_secret(harness: Harness) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timed out talking with {request.headers['authorization']}")

    harness.exotel.handler = handler
    with pytest.raises(ExotelTimeout) as excinfo:
        await harness.client.place_call(CONNECT)
    assert_no_secrets(str(excinfo.value))


async def test_logs_carry_endpoint_status_and_time_but_no_secret_or_phone_number(
    harness: Harness,
) -> None:
    with capture_logs() as logs:
        harness.exotel.reply(200, sample("v1_connect_response.json"))
        await harness.client.place_call(CONNECT)
        harness.exotel.reply(409, sample("synth_v3_error_busy.json"))
        with pytest.raises(ExotelRejected):
            await harness.client.place_call(CcmCallRequest("v3", {"from": {"contact_uri": AGENT}}))
        harness.exotel.reply(200, json.dumps({"Metadata": {}, "Calls": []}))
        await harness.client.bulk_call_details(from_numbers=[AGENT], to_numbers=[CUSTOMER])

    info = [entry for entry in logs if entry["log_level"] in ("info", "warning", "error")]
    assert [entry["endpoint"] for entry in info] == [
        "v1.connect",
        "v3.calls.create",
        "v1.calls.list",
    ]
    assert info[0]["status"] == 200
    assert "elapsed_ms" in info[0]
    assert info[1]["exotel_code"] == "10706"
    assert info[1]["error"] == "exotel_rejected"
    text = repr(logs)
    assert_no_secrets(text)
    assert AGENT not in text
    assert CUSTOMER not in text
    assert AGENT.lstrip("+") not in text


def test_the_client_repr_names_the_account_only(harness: Harness) -> None:
    assert repr(harness.client) == "ExotelClient(account='default')"
    assert_no_secrets(repr(harness.client.account))
