"""The ingress starts before Kafka does: callbacks are spooled (200), /readyz says 503 until
Kafka is reached, then the spool is replayed into the topics the ingress creates."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from contracts.topics import CALL_STATUS
from services.common.processes import free_port
from tests.ingress import samples
from tests.ingress.signing import SIGNING_SECRET, signed_query
from tests.support.broker import own_broker, own_broker_kind
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.integration

TOKEN = "startup-" + secrets.token_urlsafe(18)


def poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def call_status_keys(bootstrap: str, *, want: int, timeout: float = 20) -> list[str]:
    consumer = AIOKafkaConsumer(
        CALL_STATUS, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    keys: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while len(keys) < want:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    keys += [r.key.decode() for r in records if r.key]
    finally:
        await consumer.stop()
    return keys


def test_spools_until_kafka_answers(tmp_path: Path) -> None:
    kafka_port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "KAFKA_ENABLE_IDEMPOTENCE": str(own_broker_kind() == "apache-kafka").lower(),
        "KAFKA_TOPIC_PARTITIONS": "2",
        "KAFKA_REQUEST_TIMEOUT_MS": "3000",
        "CALLBACK_TOKEN": TOKEN,
        "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
        "INGRESS_SPOOL_DIR": str(tmp_path / "spool"),
    }
    ingress = ServiceProcess("ingress", env)
    base = ingress.url
    with own_broker(kafka_port, start=False) as broker:
        try:
            ingress.start(ready_path="/healthz", timeout=20)
            assert httpx.get(f"{base}/readyz").status_code == 503
            url = f"{base}/exotel/callbacks/{TOKEN}?{signed_query(command_id='early')}"
            early = samples.load("v1_terminal.json") | {"CallSid": "spooled-before-kafka"}
            response = httpx.post(url, json=early, timeout=10)
            assert response.status_code == 200, response.text  # durable in the spool
            readyz = httpx.get(f"{base}/readyz").json()
            assert (readyz["status"], readyz["spool_depth"]) == ("not ready", 1)

            broker.start()
            poll(lambda: httpx.get(f"{base}/readyz").status_code == 200, 30, "/readyz")
            later = samples.load("v1_terminal.json") | {"CallSid": "after-kafka"}
            assert httpx.post(url, json=later, timeout=10).status_code == 200
            keys = asyncio.run(call_status_keys(broker.bootstrap_servers, want=2))
            assert keys == ["spooled-before-kafka", "after-kafka"]
            poll(lambda: httpx.get(f"{base}/readyz").json()["spool_depth"] == 0, 10, "drained")
        finally:
            code = ingress.stop(20)
    output = ingress.output
    ingress.cleanup()
    assert code == 0, output
    assert "ingress.spool.drained" in output
    assert TOKEN not in output
