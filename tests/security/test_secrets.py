"""No secret (path token, signing secret, a callback's sig) in a log line, fact or DLQ header;
body and field limits hold; the executor's signing secret is redacted."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from starlette.exceptions import StarletteDeprecationWarning

from services.common.logging import REDACTED, redact
from services.ingress.app import create_app
from services.ingress.parsing import MAX_VALUE_CHARS
from services.ingress.settings import IngressSettings
from services.ingress.sinks import dead_letter_headers, fact_headers
from tests.ingress import samples
from tests.ingress.fakes import MemoryOutlet
from tests.ingress.signing import SIGNER, SIGNING_SECRET, signed_query

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TOKEN = "security-token-0123456789abcdef"
PREVIOUS_TOKEN = "security-previous-token-0123456789"
LIMIT = 4096


@pytest.fixture
def outlet() -> MemoryOutlet:
    return MemoryOutlet()


@pytest.fixture
def client(outlet: MemoryOutlet) -> Iterator[TestClient]:
    settings = IngressSettings.model_validate(
        {
            "callback_token": TOKEN,
            "previous_callback_token": PREVIOUS_TOKEN,
            "callback_signing_secret": SIGNING_SECRET,
            "max_body_bytes": LIMIT,
            "publish_timeout_seconds": 1.0,
            "spool_after_seconds": 0.5,
        }
    )
    with TestClient(create_app(settings, outlet=outlet)) as test_client:
        deadline = time.monotonic() + 5
        while test_client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield test_client


def exchange(client: TestClient) -> list[tuple[str, int]]:
    """Accepted, unreadable, oversized, wrong-token and forged callbacks."""
    query = signed_query(command_id="sec-1", account="default", api="v1")
    good = f"/exotel/callbacks/{TOKEN}?{query}"
    forged = good.replace("sec-1", "sec-2")
    wrong = f"/exotel/callbacks/{TOKEN[:-1]}x?{query}"
    body = samples.load("v1_terminal.json")
    answers = [
        (good, client.post(good, json=body).status_code),
        (
            good,
            client.post(
                good, content=b"{oops", headers={"content-type": "application/json"}
            ).status_code,
        ),
        (good, client.post(good, json={"CallSid": "x", "Pad": "x" * LIMIT}).status_code),
        (forged, client.post(forged, json=body).status_code),
        (wrong, client.post(wrong, json=body).status_code),
        (good, client.get(f"{good}&CallSid=q1&Status=busy").status_code),
    ]
    assert [code for _, code in answers] == [200, 400, 413, 401, 401, 200]
    return answers


def passthru_exchange(client: TestClient) -> str:
    """Accepted, unreadable (no CallSid), forged and wrong-token Passthru requests; the sig."""
    query = signed_query(account="default")
    good = f"/exotel/passthru/{TOKEN}?{query}"
    forged = good.replace("account=default", "account=other")
    wrong = f"/exotel/passthru/{TOKEN[:-1]}x?{query}"
    flow = "&" + "&".join(
        f"{k}={v}" for k, v in samples.query_pairs("passthru_before_connect.query.txt")
    )
    answers = [
        client.get(good + flow).status_code,
        client.get(good + "&CallFrom=0XXXXX30240&CallType=call-attempt").status_code,
        client.get(forged + flow).status_code,
        client.get(wrong + flow).status_code,
    ]
    assert answers == [200, 400, 401, 401]
    return SIGNER.sign({"account": "default"})


def secrets_in(text: str, sig: str) -> list[str]:
    return [s for s in (TOKEN, PREVIOUS_TOKEN, SIGNING_SECRET, sig) if s in text]


def test_no_secret_in_any_log_line(client: TestClient) -> None:
    sig = SIGNER.sign({"command_id": "sec-1", "account": "default", "api": "v1"})
    with structlog.testing.capture_logs() as logs:
        exchange(client)
    assert any(entry.get("outcome") == "bad_signature" for entry in logs)
    assert secrets_in(json.dumps(logs, default=str), sig) == []


def test_no_secret_in_facts_or_dead_letters(client: TestClient, outlet: MemoryOutlet) -> None:
    sig = SIGNER.sign({"command_id": "sec-1", "account": "default", "api": "v1"})
    exchange(client)
    assert len(outlet.facts.events) == 2
    for event in outlet.facts.events:
        exposed = event.model_dump_json() + json.dumps(fact_headers(event))
        assert secrets_in(exposed, sig) == []
    [letter] = outlet.dead_letters.letters
    assert secrets_in(json.dumps(dead_letter_headers(letter)), sig) == []


def test_field_limits_hold(client: TestClient, outlet: MemoryOutlet) -> None:
    url = f"/exotel/callbacks/{TOKEN}?{signed_query()}"
    long_value = samples.load("v1_terminal.json") | {"CustomField": "x" * (MAX_VALUE_CHARS + 1)}
    response = client.post(
        url, content=json.dumps(long_value), headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 413)
    deep: Any = "x"
    for _ in range(20):
        deep = {"a": deep}
    response = client.post(url, json=samples.load("v1_terminal.json") | {"Deep": deep})
    assert response.status_code == 400
    many = "&".join(f"f{n}=1" for n in range(1_500))
    response = client.post(
        url, content=many, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code in (400, 413)
    assert outlet.facts.events == []


def test_the_executor_registers_its_signing_secret_for_redaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.executor.settings import ExecutorSettings

    secret = "executor-signing-secret-0123456789abcdef"
    monkeypatch.setenv("CALLBACK_TOKEN", TOKEN)
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", secret)
    settings = ExecutorSettings()
    settings.callback_signer()
    assert redact(f"before {secret} after") == f"before {REDACTED} after"
    assert secret not in repr(settings)


def test_a_bad_executor_secret_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from services.executor.settings import ExecutorSettings

    monkeypatch.setenv("CALLBACK_TOKEN", TOKEN)
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", "too-short-to-sign")
    with pytest.raises(ValidationError) as caught:
        ExecutorSettings()
    assert "too-short-to-sign" not in str(caught.value)


def test_no_secret_in_the_passthru_endpoints_logs_facts_or_dead_letter_headers(
    client: TestClient, outlet: MemoryOutlet
) -> None:
    with structlog.testing.capture_logs() as logs:
        sig = passthru_exchange(client)
    assert any(e.get("event") == "ingress.passthru" for e in logs)
    assert any(e.get("outcome") == "bad_signature" for e in logs)
    assert secrets_in(json.dumps(logs, default=str), sig) == []
    [event] = outlet.facts.events
    assert event.event_type == "flow"
    exposed = event.model_dump_json() + json.dumps(fact_headers(event))
    assert secrets_in(exposed, sig) == []
    [letter] = outlet.dead_letters.letters
    assert secrets_in(json.dumps(dead_letter_headers(letter)), sig) == []
    assert TOKEN.encode() not in letter.body, "the raw query, never the path's token"
