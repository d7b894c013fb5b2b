"""The ingress as a real process against a real broker: HTTP in, Kafka facts out."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio

from contracts.topics import CALL_STATUS, dlq
from tests.ingress import samples
from tests.ingress.signing import SIGNING_SECRET, signed_params, signed_query
from tests.support import broker as broker_support
from tests.support.facts import Fact, FactReader
from tests.support.services import ServiceProcess

pytestmark = [
    pytest.mark.integration,
    # tests/support/broker.py's docker_engine_answers() leaks the docker client's unix
    # socket when no Docker engine answers; only that AF_UNIX socket is tolerated here
    # (the ingress and the tests use TCP sockets, whose leaks still fail the tests).
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <socket.socket fd=\d+, family=1,"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "it-" + secrets.token_urlsafe(24)
CALL_STATUS_DLQ = dlq(CALL_STATUS)


@dataclass
class Ingress:
    """The ingress as a real process, addressed by its signed callback URLs."""

    service: ServiceProcess

    @property
    def base_url(self) -> str:
        return self.service.url

    def url(self, token: str = TOKEN, **query: str) -> str:
        return f"{self.base_url}/exotel/callbacks/{token}?{signed_query(**query)}"

    def stop(self, timeout: float = 20.0) -> int | None:
        return self.service.stop(timeout)

    def output(self) -> str:
        return self.service.output


@pytest.fixture(scope="module")
def ingress(
    kafka_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ingress]:
    spool = tmp_path_factory.mktemp("ingress") / "spool"
    env = {
        **kafka_env,
        "CALLBACK_TOKEN": TOKEN,
        "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
        "INGRESS_SPOOL_DIR": str(spool),
    }
    service = ServiceProcess("ingress", env)
    with service:
        yield Ingress(service)
    service.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def reader(broker: broker_support.SuiteBroker, ingress: Ingress) -> AsyncIterator[FactReader]:
    # Depends on `ingress`: its topics exist before the reader subscribes.
    facts = await FactReader(broker.bootstrap_servers, [CALL_STATUS, CALL_STATUS_DLQ]).start()
    try:
        yield facts
    finally:
        await facts.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


def new_sid() -> str:
    return uuid.uuid4().hex


def v1_terminal_callback(sid: str) -> tuple[bytes, dict[str, str]]:
    """The sample v1 terminal callback (multipart) for call ``sid``: body and headers."""
    pairs = [(k, sid if k == "CallSid" else v) for k, v in samples.form_pairs()]
    headers = {"content-type": "multipart/form-data; boundary=exotelboundary42"}
    return samples.multipart_body(pairs), headers


def keyed(sid: str) -> Any:
    return lambda fact: fact.key == sid


def assert_cloudevent(fact: Fact, sid: str, event_type: str) -> None:
    headers = fact.headers
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == fact.value["event_id"]
    assert headers["ce_type"] == f"voicebus.call.status.{event_type}"
    assert headers["ce_source"] == "voicebus/ingress"
    assert headers["ce_subject"] == sid
    assert headers["content-type"] == "application/json"
    datetime.fromisoformat(headers["ce_time"])


async def test_v1_multipart_terminal_callback(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    sid = new_sid()
    body, headers = v1_terminal_callback(sid)
    response = await http.post(
        ingress.url(command_id="cmd-v1-multipart", account="default", api="v1"),
        content=body,
        headers=headers,
    )
    assert response.status_code == 200, response.text
    [fact] = await reader.wait_for(CALL_STATUS, keyed(sid), timeout=20)
    assert fact.value["call_sid"] == sid
    assert fact.value["event_id"] == response.json()["event_id"]
    assert (fact.value["status"], fact.value["exotel_status"]) == ("no-answer", "no-answer")
    assert fact.value["command_id"] == "cmd-v1-multipart"
    assert fact.value["account"] == "default"
    assert fact.value["api"] == "v1"
    assert fact.value["from"] == "+91941374XXXX"
    assert fact.value["started_at"] == "2019-04-08T03:10:55+05:30"
    assert [leg["status"] for leg in fact.value["legs"]] == ["no-answer", None]
    assert_cloudevent(fact, sid, "terminal")


async def test_v3_json_callback(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    sid = new_sid()
    payload = samples.load("v3_terminal.json")
    payload["call_details"]["sid"] = sid
    response = await http.post(ingress.url(command_id="cmd-v3", api="v3"), json=payload)
    assert response.status_code == 200, response.text
    [fact] = await reader.wait_for(CALL_STATUS, keyed(sid), timeout=10)
    assert (fact.value["api"], fact.value["status"], fact.value["command_id"]) == (
        "v3",
        "completed",
        "cmd-v3",
    )
    assert fact.value["raw"] == payload
    assert_cloudevent(fact, sid, "terminal")


async def test_get_callback(ingress: Ingress, reader: FactReader, http: httpx.AsyncClient) -> None:
    sid = new_sid()
    params: list[tuple[str, str | int | float | bool | None]] = [
        *signed_params(command_id="cmd-get"),
        ("CallSid", sid),
        ("EventType", "answered"),
        ("Status", "in-progress"),
        ("StartTime", "2019-04-08 03:10:55"),
        ("Legs[0][Status]", "in-progress"),
    ]
    response = await http.get(
        f"{ingress.base_url}/exotel/callbacks/{TOKEN}", params=httpx.QueryParams(params)
    )
    assert response.status_code == 200, response.text
    [fact] = await reader.wait_for(CALL_STATUS, keyed(sid), timeout=10)
    assert (fact.value["event_type"], fact.value["status"], fact.value["command_id"]) == (
        "answered",
        "in-progress",
        "cmd-get",
    )
    assert "command_id" not in fact.value["raw"]
    assert "sig" not in fact.value["raw"]
    assert_cloudevent(fact, sid, "answered")


async def test_duplicate_callback_keeps_the_event_id(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    sid = new_sid()
    body = json.dumps(samples.load("v1_terminal.json") | {"CallSid": sid}).encode()
    for _ in range(2):
        response = await http.post(
            ingress.url(command_id="cmd-dup"),
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200
    first, second = await reader.wait_for(CALL_STATUS, keyed(sid), count=2, timeout=10)
    assert first.value["event_id"] == second.value["event_id"]
    assert first.headers["ce_id"] == second.headers["ce_id"]


async def test_wrong_token_is_401_and_publishes_nothing(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    sid = new_sid()
    refused = samples.load("v1_terminal.json") | {"CallSid": sid, "Status": "busy"}
    for token in ("x" * 24, TOKEN[:-1], TOKEN + "0"):
        response = await http.post(ingress.url(token=token), json=refused)
        assert response.status_code == 401
        assert TOKEN not in response.text
    # A later accepted callback for the same call lands on the same partition after
    # anything the refused ones could have published.
    accepted = refused | {"Status": "completed"}
    assert (await http.post(ingress.url(), json=accepted)).status_code == 200
    await reader.wait_for(CALL_STATUS, keyed(sid), timeout=10)
    assert [f.value["exotel_status"] for f in reader.matching(CALL_STATUS, keyed(sid))] == [
        "completed"
    ]


async def test_bad_signature_is_401_and_publishes_nothing(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    sid = new_sid()
    refused = samples.load("v1_terminal.json") | {"CallSid": sid, "Status": "busy"}
    good = signed_query(command_id="cmd-sig", account="default", api="v1")
    forged = good.replace("cmd-sig", "cmd-other")
    base = f"{ingress.base_url}/exotel/callbacks/{TOKEN}"
    for query in (forged, "command_id=cmd-sig&account=default&api=v1", f"{good}&command_id=x"):
        response = await http.post(f"{base}?{query}", json=refused)
        assert response.status_code == 401, query
    accepted = refused | {"Status": "completed"}
    assert (await http.post(f"{base}?{good}", json=accepted)).status_code == 200
    [fact] = await reader.wait_for(CALL_STATUS, keyed(sid), timeout=10)
    assert (fact.value["exotel_status"], fact.value["command_id"]) == ("completed", "cmd-sig")
    metrics = (await http.get(f"{ingress.base_url}/metrics")).text
    assert 'voicebus_ingress_callbacks_rejected_total{reason="bad_signature"} 3.0' in metrics


async def test_oversized_body_is_413(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    sid = new_sid()
    big = samples.load("v1_terminal.json") | {"CallSid": sid, "Padding": "x" * 70_000}
    response = await http.post(ingress.url(), json=big)
    assert response.status_code == 413
    small = samples.load("v1_terminal.json") | {"CallSid": sid}
    assert (await http.post(ingress.url(), json=small)).status_code == 200
    await reader.wait_for(CALL_STATUS, keyed(sid), timeout=10)
    facts = reader.matching(CALL_STATUS, keyed(sid))
    assert len(facts) == 1
    assert "Padding" not in facts[0].value["raw"]


async def test_unreadable_body_goes_to_the_dlq(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    body = json.dumps({"marker": new_sid(), "Status": "completed"}).encode()
    response = await http.post(
        ingress.url(command_id="cmd-bad"),
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    [letter] = await reader.wait_for(CALL_STATUS_DLQ, lambda f: f.raw == body, timeout=10)
    assert "no call sid" in letter.headers["error"]
    assert letter.headers["origin"] == "ingress"
    assert letter.headers["content-type"] == "application/json"
    datetime.fromisoformat(letter.headers["received_at"])
    assert all(TOKEN not in value for value in letter.headers.values())


# --------------------------------------------------------------------------- Passthru


def passthru_url(ingress: Ingress, pairs: list[tuple[str, str]], token: str = TOKEN) -> str:
    """The URL on the dashboard (``voicebus passthru-url``) with Exotel's query appended."""
    query = signed_query(account="default")
    return f"{ingress.base_url}/exotel/passthru/{token}?{query}&{urlencode(pairs)}"


def flow_pairs(name: str, sid: str) -> list[tuple[str, str]]:
    return [(k, sid if k == "CallSid" else v) for k, v in samples.query_pairs(name)]


async def test_a_passthru_becomes_a_flow_fact_keyed_by_its_call_sid(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    sid = new_sid()
    first = await http.get(
        passthru_url(ingress, flow_pairs("passthru_before_connect.query.txt", sid))
    )
    last = await http.get(
        passthru_url(ingress, flow_pairs("passthru_after_connect.query.txt", sid))
    )
    assert (first.status_code, last.status_code) == (200, 200), first.text
    before, after = await reader.wait_for(CALL_STATUS, keyed(sid), count=2, timeout=10)
    assert [f.value["event_type"] for f in (before, after)] == ["flow", "flow"]
    assert [f.value["call_type"] for f in (before, after)] == ["call-attempt", "completed"]
    assert before.value["digits"] == "123"
    assert before.value["direction"] == "inbound"
    assert before.value["account"] == "default"
    assert after.value["dial_whom_number"] == "0XXXXX20000"
    assert before.value["event_id"] != after.value["event_id"]
    assert first.json()["event_id"] == before.value["event_id"], "answered once durable"
    assert_cloudevent(before, sid, "flow")


async def test_a_repeated_passthru_keeps_its_event_id(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    sid = new_sid()
    pairs = flow_pairs("passthru_before_connect.query.txt", sid)
    later = [(k, "2017-02-17 14:16:21" if k == "CurrentTime" else v) for k, v in pairs]
    for attempt in (pairs, later):
        assert (await http.get(passthru_url(ingress, attempt))).status_code == 200
    first, second = await reader.wait_for(CALL_STATUS, keyed(sid), count=2, timeout=10)
    assert first.value["event_id"] == second.value["event_id"]


async def test_a_passthru_with_a_wrong_token_or_signature_is_401_and_publishes_nothing(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    sid = new_sid()
    pairs = flow_pairs("passthru_before_connect.query.txt", sid)
    good = passthru_url(ingress, pairs)
    refused = [
        passthru_url(ingress, pairs, token=TOKEN[:-1]),
        good.replace("account=default", "account=other"),
        good.replace("sig=", "sig=x"),
        f"{ingress.base_url}/exotel/passthru/{TOKEN}?account=default&{urlencode(pairs)}",
    ]
    for url in refused:
        response = await http.get(url)
        assert response.status_code == 401, url
        assert TOKEN not in response.text
    later = flow_pairs("passthru_after_connect.query.txt", sid)
    assert (await http.get(passthru_url(ingress, later))).status_code == 200
    await reader.wait_for(CALL_STATUS, keyed(sid), timeout=10)
    assert [f.value["call_type"] for f in reader.matching(CALL_STATUS, keyed(sid))] == [
        "completed"
    ], "only the accepted one"


async def test_a_passthru_without_a_call_sid_is_400_with_its_raw_query_on_the_dlq(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    marker = new_sid()
    pairs = [("CallFrom", "0XXXXX30240"), ("CallType", "call-attempt"), ("flow_id", marker)]
    url = passthru_url(ingress, pairs)
    response = await http.get(url)
    assert response.status_code == 400
    raw = url.split("?", 1)[1].encode()
    [letter] = await reader.wait_for(CALL_STATUS_DLQ, lambda f: f.raw == raw, timeout=10)
    assert "CallSid" in letter.headers["error"]
    assert letter.headers["content-type"] == "application/x-www-form-urlencoded"
    assert all(TOKEN not in value for value in letter.headers.values())


async def test_passthrus_are_answered_well_within_a_callers_patience(
    ingress: Ingress, reader: FactReader, http: httpx.AsyncClient
) -> None:
    """Sync mode holds the caller until the answer: every answer here is a durable fact."""
    timings = []
    sids = [new_sid() for _ in range(40)]
    for sid in sids:
        url = passthru_url(ingress, flow_pairs("passthru_before_connect.query.txt", sid))
        started = time.perf_counter()
        response = await http.get(url)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    await reader.wait_for(CALL_STATUS, lambda f: f.key in sids, count=len(sids), timeout=20)
    timings.sort()
    p50, p99 = timings[len(timings) // 2], timings[int(len(timings) * 0.99)]
    print(f"Passthru answer: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max "
          f"{timings[-1] * 1000:.1f} ms (INGRESS_PASSTHRU_TIMEOUT_SECONDS 2 s)")  # fmt: skip
    assert timings[-1] < 2.0


async def test_metrics(ingress: Ingress, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{ingress.base_url}/metrics", follow_redirects=True)
    assert response.status_code == 200
    text = response.text
    assert 'voicebus_ingress_callbacks_received_total{api="v1",event_type="terminal"}' in text
    assert 'voicebus_ingress_callbacks_rejected_total{reason="unauthorized"}' in text
    assert "voicebus_ingress_publish_duration_seconds_bucket" in text
    assert TOKEN not in text


def test_stops_cleanly_on_sigterm_and_never_logs_the_token(ingress: Ingress) -> None:
    # Runs last in this module: it stops the shared ingress. Its own callback first, so the
    # log line it looks for does not depend on which tests ran before it on this ingress.
    body, headers = v1_terminal_callback(new_sid())
    response = httpx.post(
        ingress.url(command_id="cmd-before-sigterm", account="default", api="v1"),
        content=body,
        headers=headers,
        timeout=20,
    )
    assert response.status_code == 200, response.text
    assert ingress.stop() == 0
    output = ingress.output()
    assert '"event": "ingress.callback"' in output
    assert "ingress.stopped" in output
    assert TOKEN not in output
    assert SIGNING_SECRET not in output
