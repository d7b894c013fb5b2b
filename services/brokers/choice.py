"""Which Kafka ``make run`` and ``make test`` use, and why, in one place.

Order: ``KAFKA_BOOTSTRAP_SERVERS`` when set (a Kafka you run) → a testcontainers Kafka when
a Docker engine answers → Apache Kafka from its jars when Java 17+ and Maven (or a filled
jar cache) are here → the embedded Tansu broker. ``VOICEBUS_BROKER`` (``apache-kafka``,
``tansu``, ``testcontainers``) skips the probing and insists on one (CI's Tansu pass).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from services.brokers import apache_kafka

BrokerKind = Literal["external", "testcontainers", "apache-kafka", "tansu"]
FORCEABLE: tuple[BrokerKind, ...] = ("testcontainers", "apache-kafka", "tansu")


class BrokerChoiceError(RuntimeError):
    """The broker ``VOICEBUS_BROKER`` insists on cannot run here."""


@dataclass(frozen=True)
class BrokerChoice:
    kind: BrokerKind
    reason: str

    @property
    def label(self) -> str:
        return {
            "external": "your Kafka (KAFKA_BOOTSTRAP_SERVERS)",
            "testcontainers": "Apache Kafka in a testcontainer",
            "apache-kafka": f"Apache Kafka {apache_kafka.kafka_version()} (local, from its jars)",
            "tansu": "embedded Tansu",
        }[self.kind]

    def describe(self) -> str:
        """The one line that says which broker was chosen and why."""
        return f"voicebus broker: {self.label}: {self.reason}"


@dataclass(frozen=True)
class RunningBroker:
    """A broker that answers: where it is and what its engine can do."""

    bootstrap_servers: str
    choice: BrokerChoice
    #: Idempotent producers and transactions (not on Tansu).
    transactions: bool
    #: The local Apache Kafka when this process started one (fault tests restart its nodes).
    apache: apache_kafka.ApacheKafka | None = None

    @property
    def kind(self) -> BrokerKind:
        return self.choice.kind


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


def _apache_reason() -> str:
    where = "jar cache filled" if apache_kafka.jars_cached() else "Maven fetches the jars once"
    return f"Java 17+ found, {where} ({apache_kafka.cache_dir()})"


def choose(env: Mapping[str, str] | None = None) -> BrokerChoice:
    """The broker to use, by the order above."""
    env = os.environ if env is None else env
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        return BrokerChoice("external", f"KAFKA_BOOTSTRAP_SERVERS={env['KAFKA_BOOTSTRAP_SERVERS']}")
    forced = env.get("VOICEBUS_BROKER", "").strip().lower()
    if forced and forced != "auto":
        return _forced(forced)
    if docker_engine_answers():
        return BrokerChoice("testcontainers", "a Docker engine answers")
    missing = apache_kafka.unavailable_reason()
    if missing is None:
        return BrokerChoice("apache-kafka", f"no Docker engine; {_apache_reason()}")
    return BrokerChoice(
        "tansu",
        f"no Docker engine and Apache Kafka cannot run here ({missing}); "
        "librdkafka clients such as kcat need a real Kafka",
    )


def _forced(kind: str) -> BrokerChoice:
    if kind not in FORCEABLE:
        raise BrokerChoiceError(f"VOICEBUS_BROKER={kind!r}: use one of {', '.join(FORCEABLE)}")
    if kind == "apache-kafka":
        missing = apache_kafka.unavailable_reason()
        if missing is not None:
            raise BrokerChoiceError(f"VOICEBUS_BROKER=apache-kafka, but {missing}")
        return BrokerChoice("apache-kafka", f"VOICEBUS_BROKER=apache-kafka; {_apache_reason()}")
    if kind == "testcontainers" and not docker_engine_answers():
        raise BrokerChoiceError("VOICEBUS_BROKER=testcontainers, but no Docker engine answers")
    return BrokerChoice(kind, f"VOICEBUS_BROKER={kind}")


@contextlib.contextmanager
def run(
    choice: BrokerChoice,
    *,
    port: int | None = None,
    directory: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningBroker]:
    """Start the chosen broker (nothing to start for ``external``) and stop it afterwards."""
    env = os.environ if env is None else env
    if choice.kind == "external":
        idempotence = env.get("KAFKA_ENABLE_IDEMPOTENCE", "true").lower() == "true"
        yield RunningBroker(env["KAFKA_BOOTSTRAP_SERVERS"], choice, transactions=idempotence)
    elif choice.kind == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield RunningBroker(container.get_bootstrap_server(), choice, transactions=True)
    elif choice.kind == "apache-kafka":
        kafka = apache_kafka.ApacheKafka(directory=directory, ports=[port] if port else None)
        with kafka:
            yield RunningBroker(kafka.bootstrap_servers, choice, transactions=True, apache=kafka)
    else:
        from services.brokers.tansu import EmbeddedBroker

        with EmbeddedBroker(port=port) as tansu:
            yield RunningBroker(tansu.bootstrap_servers, choice, transactions=False)
