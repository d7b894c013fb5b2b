"""Which real broker the suite runs against, and private brokers for fault tests.

The order is services/brokers/choice.py's: ``KAFKA_BOOTSTRAP_SERVERS`` → testcontainers
when a Docker engine answers → Apache Kafka from its jars when Java 17+ is here → Tansu.
``VOICEBUS_BROKER=tansu`` (CI's second pass) insists on the embedded broker.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from services.brokers import apache_kafka
from services.brokers import choice as broker_choice
from services.brokers.apache_kafka import ApacheKafka
from services.brokers.tansu import EmbeddedBroker


@dataclass(frozen=True)
class SuiteBroker:
    bootstrap_servers: str
    kind: broker_choice.BrokerKind
    reason: str
    transactions: bool

    @property
    def supports_idempotence(self) -> bool:
        return self.transactions

    @property
    def is_apache_kafka(self) -> bool:
        """A real Apache Kafka engine (compaction, exact end offsets, transactions)."""
        return self.kind in ("apache-kafka", "testcontainers") or (
            self.kind == "external" and self.transactions
        )


@functools.cache
def chosen_broker() -> broker_choice.BrokerChoice:
    return broker_choice.choose()


@contextlib.contextmanager
def test_broker() -> Iterator[SuiteBroker]:
    chosen = chosen_broker()
    with broker_choice.run(chosen) as running:
        yield SuiteBroker(
            running.bootstrap_servers, chosen.kind, chosen.reason, running.transactions
        )


class OwnBroker(Protocol):
    """A broker a test starts, stops and restarts itself."""

    @property
    def bootstrap_servers(self) -> str: ...

    def start(self) -> OwnBroker: ...

    def stop(self) -> None: ...


class OwnApacheKafka:
    """A private single-node Apache Kafka whose data survives ``stop`` and ``start``."""

    kind = "apache-kafka"
    supports_transactions = True
    keeps_data = True

    def __init__(self, port: int | None = None) -> None:
        self.kafka = ApacheKafka(ports=[port] if port else None)
        self._started = False

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    def start(self) -> OwnApacheKafka:
        if not self._started:
            self.kafka.start()
            self._started = True
        else:
            self.kafka.start_node(1)
        return self

    def stop(self) -> None:
        self.kafka.stop_node(1)

    def remove(self) -> None:
        self.kafka.stop()


class OwnTansu:
    """A private Tansu broker: memory only, a restart starts empty."""

    kind = "tansu"
    supports_transactions = False
    keeps_data = False

    def __init__(self, port: int | None = None) -> None:
        self.tansu = EmbeddedBroker(port=port)

    @property
    def bootstrap_servers(self) -> str:
        return self.tansu.bootstrap_servers

    def start(self) -> OwnTansu:
        self.tansu.start()
        return self

    def stop(self) -> None:
        self.tansu.stop()

    def remove(self) -> None:
        self.tansu.stop()


def own_broker_kind() -> str:
    """Private brokers follow the suite's engine: Apache Kafka unless the suite runs on Tansu
    (or Apache Kafka cannot run here)."""
    forced = os.environ.get("VOICEBUS_BROKER", "").lower()
    if forced == "tansu":
        return "tansu"
    if apache_kafka.unavailable_reason() is None:
        return "apache-kafka"
    return "tansu"


@contextlib.contextmanager
def own_broker(
    port: int | None = None, *, start: bool = True
) -> Iterator[OwnApacheKafka | OwnTansu]:
    """A private broker of the suite's kind on ``port`` (free if unset), removed afterwards."""
    broker: OwnApacheKafka | OwnTansu = (
        OwnApacheKafka(port) if own_broker_kind() == "apache-kafka" else OwnTansu(port)
    )
    try:
        if start:
            broker.start()
        yield broker
    finally:
        broker.remove()
