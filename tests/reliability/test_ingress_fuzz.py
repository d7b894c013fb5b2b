"""Random and adversarial requests at the ingress over real HTTP (the real process, a real
broker): every answer is 200, 4xx or a 503, promptly; the process never errors or hangs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingress import samples
from tests.ingress.signing import SIGNING_SECRET, signed_query
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(180)]

TOKEN = "fuzz-token-" + uuid.uuid4().hex
ALLOWED = {200, 400, 401, 405, 413, 503}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CONTENT_TYPES = st.sampled_from(
    [
        "",
        "application/json",
        "application/json; charset=latin-1",
        "application/vnd.exotel+json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=fuzz",
        "multipart/form-data; boundary=",
        "text/plain",
        "application/xml",
        ";;;==",
    ]
)
KEYS = st.one_of(
    st.text(max_size=24),
    st.sampled_from(
        ["CallSid", "Status", "EventType", "Legs[0][Status]", "Legs[", "][", "a[b][c][d]"]
    ),
)
VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def ingress(
    kafka_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    spool: Path = tmp_path_factory.mktemp("fuzz-spool")
    process = ServiceProcess(
        "ingress",
        {
            **kafka_env,
            "CALLBACK_TOKEN": TOKEN,
            "CALLBACK_TOKEN_PREVIOUS": "",
            "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
            "CALLBACK_SIGNING_SECRET_PREVIOUS": "",
            "INGRESS_SPOOL_DIR": str(spool),
            "INGRESS_MAX_BODY_BYTES": "8192",
        },
    ).start(timeout=30)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(10.0)) as client:
        yield client


def url(ingress: ServiceProcess, extra: str = "") -> str:
    query = signed_query(command_id="fuzz", account="default", api="v1")
    return f"{ingress.url}/exotel/callbacks/{TOKEN}?{query}{extra}"


def answered(response: httpx.Response) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.text[:300])
    if response.status_code == 503:
        assert response.json()["error"] == "unavailable"


@FUZZ
@given(body=st.binary(max_size=4_096), content_type=CONTENT_TYPES)
def test_random_bytes(
    ingress: ServiceProcess, http: httpx.Client, body: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    answered(http.post(url(ingress), content=body, headers=headers))


@FUZZ
@given(value=VALUES)
def test_any_json(ingress: ServiceProcess, http: httpx.Client, value: Any) -> None:
    body = json.dumps(value).encode()
    answered(http.post(url(ingress), content=body, headers={"content-type": "application/json"}))


@FUZZ
@given(
    base=st.sampled_from(["v1_terminal.json", "v2_answered_agent.json", "v3_terminal.json"]),
    changes=st.dictionaries(KEYS, VALUES, max_size=4),
)
def test_real_callbacks_mutated(
    ingress: ServiceProcess, http: httpx.Client, base: str, changes: dict[str, Any]
) -> None:
    answered(http.post(url(ingress), json=samples.load(base) | changes))


@FUZZ
@given(pairs=st.lists(st.tuples(KEYS, st.text(max_size=60)), max_size=12), multipart=st.booleans())
def test_form_bodies_and_queries(
    ingress: ServiceProcess, http: httpx.Client, pairs: list[tuple[str, str]], multipart: bool
) -> None:
    if multipart:
        body = samples.multipart_body(pairs)
        headers = {"content-type": "multipart/form-data; boundary=exotelboundary42"}
        answered(http.post(url(ingress), content=body, headers=headers))
    else:
        answered(http.post(url(ingress), data=dict(pairs)))
    query: list[tuple[str, str | int | float | bool | None]] = list(pairs)
    extra = "&" + str(httpx.QueryParams(query)) if pairs else ""
    answered(http.get(url(ingress, extra)))


def test_the_ingress_survived(ingress: ServiceProcess, http: httpx.Client) -> None:
    """Runs after the fuzzing: still alive, still accepting, nothing crashed inside."""
    assert http.get(f"{ingress.url}/healthz").status_code == 200
    good = samples.load("v1_terminal.json") | {"CallSid": uuid.uuid4().hex}
    assert http.post(url(ingress), json=good).status_code == 200
    output = ingress.output
    assert "Traceback" not in output
    assert '"status_code": 500' not in output
    assert TOKEN not in output
    assert SIGNING_SECRET not in output
