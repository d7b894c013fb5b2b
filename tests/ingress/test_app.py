"""The HTTP layer in process, with an in-memory outlet (no Kafka): status codes and sinks."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning
from starlette.responses import JSONResponse

from services.ingress.app import accepted_body, create_app
from services.ingress.settings import IngressSettings
from tests.ingress import samples
from tests.ingress.fakes import MemoryOutlet
from tests.ingress.signing import (
    PREVIOUS_SIGNING_SECRET,
    SIGNING_SECRET,
    signed_params,
    signed_query,
)

with warnings.catch_warnings():
    # starlette 1.x would rather use httpx2 for its TestClient; httpx works the same here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TOKEN = "current-token-0123456789"
PREVIOUS = "previous-token-0123456789"
BASE = f"/exotel/callbacks/{TOKEN}"
URL = f"{BASE}?{signed_query()}"
LIMIT = 4096


def make_settings(**overrides: Any) -> IngressSettings:
    values: dict[str, Any] = {
        "callback_token": TOKEN,
        "previous_callback_token": PREVIOUS,
        "max_body_bytes": LIMIT,
        "publish_timeout_seconds": 1.0,
        "spool_after_seconds": 0.5,
        "callback_signing_secret": SIGNING_SECRET,
        "previous_callback_signing_secret": PREVIOUS_SIGNING_SECRET,
    }
    return IngressSettings.model_validate(values | overrides)


def wait_ready(client: TestClient, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError("the app never became ready")


@pytest.fixture
def outlet() -> MemoryOutlet:
    return MemoryOutlet()


@pytest.fixture
def client(outlet: MemoryOutlet) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(), outlet=outlet)) as test_client:
        wait_ready(test_client)
        yield test_client


def test_probes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert "voicebus_ingress_ready 1.0" in client.get("/metrics").text


def test_lifespan_starts_and_stops_the_outlet(outlet: MemoryOutlet) -> None:
    with TestClient(create_app(make_settings(), outlet=outlet)) as test_client:
        wait_ready(test_client)
        assert outlet.started == 1
    assert outlet.stopped == 1


def test_not_ready_until_the_outlet_starts() -> None:
    outlet = MemoryOutlet(start_failures=1)
    with TestClient(create_app(make_settings(), outlet=outlet)) as test_client:
        first = test_client.get("/readyz")
        if first.status_code == 503:  # the first attempt failed; the retry follows
            assert first.json()["kafka"] == "connecting"
            response = test_client.post(URL, json=samples.load("v1_terminal.json"))
            assert response.status_code in (200, 503)
        wait_ready(test_client)
        assert test_client.post(URL, json=samples.load("v1_terminal.json")).status_code == 200


def test_v1_json_callback(client: TestClient, outlet: MemoryOutlet) -> None:
    response = client.post(
        f"{BASE}?{signed_query(command_id='cmd-1', account='default', api='v1')}",
        content=samples.raw_bytes("v1_terminal.json"),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    [event] = outlet.facts.events
    assert response.json() == {"status": "accepted", "event_id": event.event_id}
    assert (event.call_sid, event.status, event.command_id, event.account) == (
        "492205107c5fb48f4ac25d1f77759339",
        "no-answer",
        "cmd-1",
        "default",
    )
    assert outlet.dead_letters.letters == []


def test_v1_multipart_callback(client: TestClient, outlet: MemoryOutlet) -> None:
    body = samples.multipart_body(samples.form_pairs())
    response = client.post(
        f"{BASE}?{signed_query(command_id='cmd-2')}",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=exotelboundary42"},
    )
    assert response.status_code == 200, response.text
    [event] = outlet.facts.events
    assert [leg.status for leg in event.legs] == ["no-answer", None]
    assert event.raw["Legs"][1] == {"Status": "", "OnCallDuration": "0"}
    assert event.command_id == "cmd-2"


def test_urlencoded_callback(client: TestClient, outlet: MemoryOutlet) -> None:
    response = client.post(URL, data=dict(samples.form_pairs()))
    assert response.status_code == 200
    assert outlet.facts.events[0].legs[0].status == "no-answer"


def test_get_callback_uses_the_query_minus_correlation(
    client: TestClient, outlet: MemoryOutlet
) -> None:
    params = signed_params(command_id="cmd-3", api="v3", account="acme")
    params += [
        ("event_details[event_type]", "terminal"),
        ("call_details[sid]", "0ed3bd4755078e1f9f64d2de75ce16b3"),
        ("call_details[status]", "to_leg_unanswered"),
        ("call_details[start_time]", "2022-11-03 00:18:38+05:30"),
    ]
    response = client.get(BASE, params=params)
    assert response.status_code == 200, response.text
    [event] = outlet.facts.events
    assert (event.api, event.status, event.command_id, event.account) == (
        "v3",
        "no-answer",
        "cmd-3",
        "acme",
    )
    assert "command_id" not in event.raw
    assert event.raw["call_details"]["sid"] == "0ed3bd4755078e1f9f64d2de75ce16b3"


def test_unreadable_get_dead_letters_the_query_string(
    client: TestClient, outlet: MemoryOutlet
) -> None:
    query = signed_query(command_id="c-9")
    response = client.get(f"{BASE}?{query}&Status=busy")
    assert response.status_code == 400
    [letter] = outlet.dead_letters.letters
    assert letter.body == f"{query}&Status=busy".encode()
    assert letter.content_type == "application/x-www-form-urlencoded"
    assert "no call sid" in letter.reason


def test_post_with_the_payload_in_the_query(client: TestClient, outlet: MemoryOutlet) -> None:
    response = client.post(f"{BASE}?{signed_query(command_id='c-10')}&CallSid=q1&Status=failed")
    assert response.status_code == 200
    [event] = outlet.facts.events
    assert (event.call_sid, event.status, event.command_id) == ("q1", "failed", "c-10")


@pytest.mark.parametrize("encoding", ["json", "multipart", "urlencoded", "get"])
def test_a_monitor_legs_pascal_case_terminal_is_a_leg_event_in_every_encoding(
    client: TestClient, outlet: MemoryOutlet, encoding: str
) -> None:
    """Issue 13: told by content alone (no ``api=lwb`` in the URL), through the endpoint."""
    payload = samples.load("lwb_monitor_terminal_pascal.json")
    pairs = [(k, str(v)) for k, v in payload.items()]
    url = f"{BASE}?{signed_query(command_id='lwb-7')}"
    if encoding == "json":
        response = client.post(url, json=payload)
    elif encoding == "multipart":
        response = client.post(
            url,
            content=samples.multipart_body(pairs),
            headers={"content-type": "multipart/form-data; boundary=exotelboundary42"},
        )
    elif encoding == "urlencoded":
        response = client.post(url, data=dict(pairs))
    else:
        response = client.get(f"{url}&{urlencode(pairs)}")
    assert response.status_code == 200, response.text
    [event] = outlet.facts.events
    assert (event.api, event.event_type, event.leg_sid, event.call_sid) == (
        "lwb",
        "terminal",
        "xxxxxxx",
        "xxxxxx",
    ), "a monitor leg's end, not the call's"
    assert (event.origin, event.last_action, event.command_id) == ("monitor", "whisper", "lwb-7")
    assert event.raw["LegSid"] == "xxxxxxx", "raw keeps Exotel's spelling"


def test_head_is_not_a_callback(client: TestClient, outlet: MemoryOutlet) -> None:
    assert client.head(URL + "&CallSid=h1&Status=busy").status_code == 405
    assert outlet.facts.events == []


def test_previous_token_is_accepted(client: TestClient, outlet: MemoryOutlet) -> None:
    response = client.post(
        f"/exotel/callbacks/{PREVIOUS}?{signed_query()}", json=samples.load("v3_terminal.json")
    )
    assert response.status_code == 200
    assert len(outlet.facts.events) == 1


@pytest.mark.parametrize(
    "token", ["wrong-token-0123456789", TOKEN[:-1], TOKEN + "x", "%C3%A9t%C3%A9", "x"]
)
def test_wrong_token_is_401_and_publishes_nothing(
    client: TestClient, outlet: MemoryOutlet, token: str
) -> None:
    response = client.post(f"/exotel/callbacks/{token}", json=samples.load("v1_terminal.json"))
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert outlet.facts.events == []
    assert outlet.dead_letters.letters == []
    assert client.get(f"/exotel/callbacks/{token}").status_code == 401


def test_oversized_body_is_413(client: TestClient, outlet: MemoryOutlet) -> None:
    big = {"CallSid": "abc", "CustomField": "x" * LIMIT}
    response = client.post(URL, json=big)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"CallSid": "abc", "CustomField": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    started = time.monotonic()
    response = client.post(URL, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert time.monotonic() - started < 1.0  # no waiting for more of a body already read
    assert outlet.facts.events == []
    assert outlet.dead_letters.letters == []


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"[]", "application/json", "not an object"),
        (b'{"Status": "completed"}', "application/json", "no call sid"),
        (b"hello", "text/plain", "unsupported content type"),
        (b"--nope\r\ngarbage", "multipart/form-data; boundary=other", "form"),
        (b"a=1", "multipart/form-data", "form"),
        (b"", "application/json", "empty body"),
        (b"Status=completed", "application/x-www-form-urlencoded", "no call sid"),
    ],
)
def test_unreadable_is_400_and_dead_lettered(
    client: TestClient, outlet: MemoryOutlet, body: bytes, content_type: str, reason: str
) -> None:
    response = client.post(URL, content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert reason.lower() in response.json()["reason"].lower()
    [letter] = outlet.dead_letters.letters
    assert letter.body == body
    assert reason.lower() in letter.reason.lower()
    assert letter.content_type == content_type
    assert outlet.facts.events == []


def test_multipart_file_upload_is_unreadable(client: TestClient, outlet: MemoryOutlet) -> None:
    response = client.post(URL, files={"CallSid": ("sid.txt", b"abc", "text/plain")})
    assert response.status_code == 400
    assert len(outlet.dead_letters.letters) == 1


def test_json_without_content_type_is_sniffed(client: TestClient, outlet: MemoryOutlet) -> None:
    response = client.post(URL, content=samples.raw_bytes("v2_terminal.json"))
    assert response.status_code == 200
    assert outlet.facts.events[0].api == "v2"


def test_kafka_unavailable_is_503(client: TestClient, outlet: MemoryOutlet) -> None:
    outlet.facts.fail = True
    response = client.post(URL, json=samples.load("v1_terminal.json"))
    assert response.status_code == 503
    assert outlet.dead_letters.letters == []


def test_slow_kafka_is_503_within_the_timeout(outlet: MemoryOutlet) -> None:
    outlet.facts.delay = 5.0
    app = create_app(
        make_settings(publish_timeout_seconds=0.2, spool_after_seconds=0.1), outlet=outlet
    )
    with TestClient(app) as test_client:
        wait_ready(test_client)
        started = time.monotonic()
        response = test_client.post(URL, json=samples.load("v1_terminal.json"))
        assert response.status_code == 503
        assert time.monotonic() - started < 2.0
        metrics = test_client.get("/metrics").text
    assert 'voicebus_ingress_publish_duration_seconds_count{outcome="timeout"} 1.0' in metrics
    assert 'voicebus_ingress_callbacks_rejected_total{reason="unavailable"} 1.0' in metrics


def test_dead_letter_failure_is_503(client: TestClient, outlet: MemoryOutlet) -> None:
    outlet.dead_letters.fail = True
    response = client.post(URL, content=b"{bad", headers={"content-type": "application/json"})
    assert response.status_code == 503


def test_metrics_count_by_bounded_labels(client: TestClient) -> None:
    client.post(URL, json=samples.load("v1_terminal.json"))
    client.post(URL, json=samples.load("v2_answered_agent.json"))
    client.post("/exotel/callbacks/nope-nope-nope-nope", json={})
    client.post(URL, content=b"{", headers={"content-type": "application/json"})
    client.post(URL, content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"})
    text = client.get("/metrics").text
    for line in [
        'voicebus_ingress_callbacks_received_total{api="v1",event_type="terminal"} 1.0',
        'voicebus_ingress_callbacks_received_total{api="v2",event_type="answered"} 1.0',
        'voicebus_ingress_callbacks_rejected_total{reason="unauthorized"} 1.0',
        'voicebus_ingress_callbacks_rejected_total{reason="unreadable"} 1.0',
        'voicebus_ingress_callbacks_rejected_total{reason="too_large"} 1.0',
        'voicebus_ingress_dlq_writes_total{outcome="ok"} 1.0',
        'voicebus_ingress_publish_duration_seconds_count{outcome="ok"} 2.0',
    ]:
        assert line in text
    assert "492205107c5fb48f4ac25d1f77759339" not in text
    assert TOKEN not in text


def test_duplicates_keep_the_event_id(client: TestClient, outlet: MemoryOutlet) -> None:
    body = samples.raw_bytes("v3_terminal.json")
    for _ in range(2):
        client.post(URL, content=body, headers={"content-type": "application/json"})
    first, second = outlet.facts.events
    assert first.event_id == second.event_id
    assert json.loads(first.model_dump_json(by_alias=True))["event_id"] == first.event_id


# --------------------------------------------------------------------------- robustness


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[TestClient, MemoryOutlet]]:
    outlet = MemoryOutlet()
    with TestClient(create_app(make_settings(), outlet=outlet)) as test_client:
        wait_ready(test_client)
        yield test_client, outlet


CONTENT_TYPES = [
    "application/json",
    "multipart/form-data; boundary=b",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/plain",
    "",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.sampled_from(CONTENT_TYPES))
def test_random_bodies_never_500(
    shared: tuple[TestClient, MemoryOutlet], body: bytes, content_type: str
) -> None:
    client, _ = shared
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code in (200, 400), response.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.text(max_size=15), st.text(max_size=15)), max_size=12))
def test_random_multipart_fields_never_500(
    shared: tuple[TestClient, MemoryOutlet], pairs: list[tuple[str, str]]
) -> None:
    client, _ = shared
    clean = [(k.replace('"', "").replace("\r", "").replace("\n", ""), v) for k, v in pairs]
    body = samples.multipart_body(clean, boundary="fuzzboundary")
    response = client.post(
        URL, content=body, headers={"content-type": "multipart/form-data; boundary=fuzzboundary"}
    )
    assert response.status_code in (200, 400), response.text


# --------------------------------------------------------------------------- Passthru

PASSTHRU = f"/exotel/passthru/{TOKEN}"


def passthru_url(pairs: list[tuple[str, str]], **correlation: str) -> str:
    """The dashboard's URL (signed account) with Exotel's parameters appended."""
    return f"{PASSTHRU}?{signed_query(**correlation)}&{urlencode(pairs)}"


def test_a_passthru_get_is_a_flow_fact_once_durable(
    client: TestClient, outlet: MemoryOutlet
) -> None:
    pairs = samples.query_pairs("passthru_before_connect.query.txt")
    response = client.get(passthru_url(pairs, account="default"))
    assert response.status_code == 200, response.text
    [event] = outlet.facts.events
    assert response.json() == {"status": "accepted", "event_id": event.event_id}
    assert (event.api, event.event_type, event.call_sid) == (
        "passthru",
        "flow",
        "b6cfaf5f5cef3ca0fc937749ef960e25",
    )
    assert (event.account, event.digits, event.direction) == ("default", "123", "inbound")
    assert "sig" not in event.raw
    assert "account" not in event.raw


def test_the_passthru_endpoint_reads_even_a_bare_notification_as_a_flow_event(
    client: TestClient, outlet: MemoryOutlet
) -> None:
    response = client.get(passthru_url([("CallSid", "CA7"), ("Status", "completed")]))
    assert response.status_code == 200
    [event] = outlet.facts.events
    assert (event.api, event.event_type, event.status) == ("passthru", "flow", "unknown")


def test_a_passthru_post_form_is_read_too(client: TestClient, outlet: MemoryOutlet) -> None:
    response = client.post(
        f"{PASSTHRU}?{signed_query(account='default')}",
        data=dict(samples.query_pairs("passthru_after_connect.query.txt")),
    )
    assert response.status_code == 200, response.text
    assert [e.call_type for e in outlet.facts.events] == ["completed"]


def test_a_repeated_passthru_keeps_its_event_id(client: TestClient, outlet: MemoryOutlet) -> None:
    pairs = samples.query_pairs("passthru_before_connect.query.txt")
    client.get(passthru_url(pairs, account="default"))
    later = [(k, "2017-02-17 14:16:20" if k == "CurrentTime" else v) for k, v in pairs]
    client.get(passthru_url(later, account="default"))
    first, second = outlet.facts.events
    assert first.event_id == second.event_id
    assert first.call_sid == second.call_sid


@pytest.mark.parametrize(
    "url",
    [
        f"/exotel/passthru/{TOKEN[:-1]}x?{signed_query(account='default')}&CallSid=CA1",
        f"{PASSTHRU}?{signed_query(account='default').replace('default', 'other')}&CallSid=CA1",
        f"{PASSTHRU}?account=default&CallSid=CA1",
        f"{PASSTHRU}?{signed_query(account='default')}&sig=again&CallSid=CA1",
    ],
    ids=["wrong token", "forged account", "no sig", "two sigs"],
)
def test_a_passthru_with_a_wrong_token_or_signature_is_401_and_publishes_nothing(
    client: TestClient, outlet: MemoryOutlet, url: str
) -> None:
    response = client.get(url)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert outlet.facts.events == []
    assert outlet.dead_letters.letters == []


def test_a_passthru_without_a_call_sid_is_400_with_its_raw_query_dead_lettered(
    client: TestClient, outlet: MemoryOutlet
) -> None:
    query = f"{signed_query(account='default')}&CallFrom=0XXXXX30240&CallType=call-attempt"
    response = client.get(f"{PASSTHRU}?{query}")
    assert response.status_code == 400
    assert "CallSid" in response.json()["reason"]
    [letter] = outlet.dead_letters.letters
    assert letter.body == query.encode()
    assert letter.content_type == "application/x-www-form-urlencoded"
    assert outlet.facts.events == []


def test_a_passthru_is_answered_within_its_own_deadline(outlet: MemoryOutlet) -> None:
    outlet.facts.delay = 5.0
    settings = make_settings(
        publish_timeout_seconds=3.0,
        spool_after_seconds=1.0,
        passthru_timeout_seconds=0.2,
        passthru_spool_after_seconds=0.1,
    )
    with TestClient(create_app(settings, outlet=outlet)) as test_client:
        wait_ready(test_client)
        started = time.monotonic()
        response = test_client.get(passthru_url([("CallSid", "CA8")], account="default"))
        elapsed = time.monotonic() - started
        metrics = test_client.get("/metrics").text
    assert response.status_code == 503, "not durable: not a 200"
    assert elapsed < 1.0, "the Passthru's deadline, not the callbacks' 3 s"
    assert 'voicebus_ingress_answer_duration_seconds_count{endpoint="passthru"} 1.0' in metrics


def test_passthru_metrics_have_their_own_labels(client: TestClient) -> None:
    client.get(passthru_url(samples.query_pairs("passthru_before_connect.query.txt")))
    text = client.get("/metrics").text
    assert 'voicebus_ingress_callbacks_received_total{api="passthru",event_type="flow"} 1.0' in text
    assert "b6cfaf5f5cef3ca0fc937749ef960e25" not in text


def test_the_passthru_deadline_must_leave_room_for_the_spool() -> None:
    with pytest.raises(ValueError, match="INGRESS_PASSTHRU_SPOOL_AFTER_SECONDS"):
        make_settings(passthru_timeout_seconds=0.5, passthru_spool_after_seconds=0.5)


# --------------------------------------------------------------------------- the direct path


def test_the_accepted_body_is_what_json_response_renders() -> None:
    event_id = "0b6c1f0e-5d6a-5b8e-9f3a-2c4d6e8f0a1b"
    rendered = JSONResponse({"status": "accepted", "event_id": event_id}).body
    assert accepted_body(event_id) == rendered


def test_an_accepted_callback_is_answered_as_before(client: TestClient) -> None:
    response = client.post(URL, json=samples.load("v1_terminal.json"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json()["status"] == "accepted"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/exotel/callbacks/", 404),  # no token: not the route
        ("POST", f"{BASE}/more", 404),
        ("POST", "/exotel/passthru/", 404),
        ("PUT", URL, 405),  # starlette's route answers other methods
        ("DELETE", f"/exotel/passthru/{TOKEN}", 405),
        ("POST", "/exotel/callback/x", 404),
    ],
)
def test_what_the_direct_path_leaves_to_starlette(
    client: TestClient, outlet: MemoryOutlet, method: str, path: str, status: int
) -> None:
    response = client.request(method, path, json=samples.load("v1_terminal.json"))
    assert response.status_code == status
    assert outlet.facts.events == []


def test_a_trailing_slash_is_redirected_by_starlette(client: TestClient) -> None:
    response = client.post(f"{BASE}/?{signed_query()}", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"].endswith(URL)


def test_a_root_path_goes_through_starlette() -> None:
    outlet = MemoryOutlet()
    app = create_app(make_settings(), outlet=outlet)
    with TestClient(app, root_path="/behind") as test_client:
        wait_ready(test_client)
        response = test_client.post(URL, json=samples.load("v1_terminal.json"))
    assert response.status_code == 200
    assert len(outlet.facts.events) == 1


class _Broken:
    async def put(self, event: object) -> None:
        raise RuntimeError("a bug")


def test_an_unexpected_error_is_a_500_and_reaches_the_server() -> None:
    outlet = MemoryOutlet()
    outlet.memory_facts = _Broken()  # type: ignore[assignment]
    app = create_app(make_settings(), outlet=outlet)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        wait_ready(test_client)
        response = test_client.post(URL, json=samples.load("v1_terminal.json"))
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    with TestClient(app) as test_client, pytest.raises(RuntimeError, match="a bug"):
        test_client.post(URL, json=samples.load("v1_terminal.json"))


def test_a_remembered_url_still_needs_its_own_signature(
    client: TestClient, outlet: MemoryOutlet
) -> None:
    url = f"{BASE}?{signed_query(command_id='cmd-9', account='default', api='v1')}"
    for _ in range(3):  # parsed and verified once, then remembered
        assert client.post(url, json=samples.load("v1_terminal.json")).status_code == 200
    tampered = url.replace("cmd-9", "cmd-8")
    assert client.post(tampered, json=samples.load("v1_terminal.json")).status_code == 401
    other = f"{url}&CallSid=x"  # a payload parameter: another query string, verified again
    assert client.post(other, json=samples.load("v1_terminal.json")).status_code == 200
    assert [event.command_id for event in outlet.facts.events] == ["cmd-9"] * 4
