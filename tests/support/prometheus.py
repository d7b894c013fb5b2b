"""A live Prometheus (Debian's ``prometheus``) as a child process, and its HTTP API.

The configuration is written as JSON, which Prometheus reads as the YAML it is a subset of.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx

from services.common.processes import ChildProcess, free_port, wait_until
from tests.support.tools import tool

T = TypeVar("T")


class PrometheusError(RuntimeError):
    """Prometheus did not start, or its API answered an error."""


class LivePrometheus:
    """``prometheus`` with ``config`` on a free loopback port and storage of its own.

    ``config`` is a function of Prometheus's own address (its self-scrape target).
    """

    def __init__(self, config: Callable[[str], Mapping[str, Any]]) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="voicebus-prometheus-"))
        self.config_file = self.directory / "prometheus.yml"
        self.config_file.write_text(json.dumps(config(self.address), indent=2), "utf-8")
        self.process = ChildProcess(
            [
                tool("prometheus"),
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address={self.address}",
                "--log.level=warn",
            ],
            name="prometheus",
        )
        self.client = httpx.Client(base_url=self.url, timeout=5)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 60.0) -> Self:
        self.process.start()
        if not wait_until(self._ready, timeout, interval=0.2):
            self.process.stop(timeout=10)
            raise PrometheusError(
                f"Prometheus not ready within {timeout}s (exit {self.process.returncode}):\n"
                f"{self.process.tail()}"
            )
        return self

    def _ready(self) -> bool:
        if not self.process.running():
            return True  # start() reports it
        try:
            return self.client.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.client.close()
        self.process.stop(timeout=15)
        self.process.cleanup()

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``; fails with Prometheus's error."""
        response = self.client.get(f"/api/v1/{path}", params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {response.status_code} {body}")
        return body["data"]

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant vector: each series's ``metric`` labels and ``value``."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def eventually(self, probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
        """Poll ``probe`` until it returns something; fail saying ``what`` did not happen."""
        found: list[T] = []

        def seen() -> bool:
            value = probe()
            if value:
                found.append(value)
            return bool(found)

        if not wait_until(seen, timeout, interval=0.25):
            raise AssertionError(
                f"Prometheus: {what} did not happen within {timeout}s; "
                f"its log ends:\n{self.process.tail(20)}"
            )
        return found[0]


@contextlib.contextmanager
def live_prometheus(config: Callable[[str], Mapping[str, Any]]) -> Iterator[LivePrometheus]:
    """A started ``LivePrometheus`` with ``config``, stopped afterwards."""
    prometheus = LivePrometheus(config).start()
    try:
        yield prometheus
    finally:
        prometheus.stop()
