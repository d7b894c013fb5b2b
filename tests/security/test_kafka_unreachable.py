"""Bad input: a bootstrap address that never answers. The executor and the metrics service
stop with an error naming ``KAFKA_BOOTSTRAP_SERVERS`` within ``KAFKA_REQUEST_TIMEOUT_MS`` of
reaching for Kafka (not 30 silent retries); the ingress starts anyway, spools, and its
``/readyz`` says why it is not ready."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from services.sandbox.testing import SandboxServer
from tests.integration.stack import executor_env, ingress_env
from tests.support.network import silent_address
from tests.support.services import START_ALLOWANCE_SECONDS, ServiceProcess, until_exit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REQUEST_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def silent() -> Iterator[dict[str, str]]:
    with silent_address() as address:
        yield {
            "KAFKA_BOOTSTRAP_SERVERS": address,
            "KAFKA_REQUEST_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS),
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
        }


@pytest.mark.parametrize("service", ["executor", "metrics"])
def test_a_service_stops_naming_the_bootstrap_servers(service: str, silent: dict[str, str]) -> None:
    if service == "executor":
        with SandboxServer() as sandbox:
            env = executor_env(silent, sandbox, "http://127.0.0.1:9")
    else:
        env = {**silent, "METRICS_GROUP_ID": f"metrics-{uuid.uuid4().hex[:8]}"}
    bound = REQUEST_TIMEOUT_MS / 1000 + START_ALLOWANCE_SECONDS
    (exited,) = until_exit({service: env}, within=bound)
    assert exited.returncode == 2, exited.output[-3000:]
    assert "cannot use Kafka (KAFKA_BOOTSTRAP_SERVERS)" in exited.output
    address = silent["KAFKA_BOOTSTRAP_SERVERS"]
    assert f"no Kafka broker answered at KAFKA_BOOTSTRAP_SERVERS={address}" in exited.output
    assert "within 3s (KAFKA_REQUEST_TIMEOUT_MS=3000)" in exited.output


def test_the_ingress_starts_and_says_why_it_is_not_ready(silent: dict[str, str]) -> None:
    ingress = ServiceProcess("ingress", ingress_env(silent))
    try:
        ingress.start(ready_path="/healthz")
        deadline = time.monotonic() + 30
        answer = httpx.get(f"{ingress.url}/readyz", timeout=5)
        while "KAFKA_BOOTSTRAP_SERVERS" not in answer.text and time.monotonic() < deadline:
            time.sleep(0.2)
            answer = httpx.get(f"{ingress.url}/readyz", timeout=5)
        assert answer.status_code == 503
        assert "no Kafka broker answered at KAFKA_BOOTSTRAP_SERVERS=" in answer.json()["last_error"]
        assert ingress.running()
    finally:
        ingress.stop(10)
        ingress.cleanup()
