"""Apache Kafka itself on this machine, from its published jars: one KRaft node or three.

No Docker and no tarball: Maven copies the broker artifact (``pom.xml`` beside this file,
where its version is pinned) and its dependencies once into a cache outside git, and each
node runs as ``java -cp '<cache>/libs/*' kafka.Kafka server.properties``. Every node is a
combined broker and controller on free loopback ports; a cluster's nodes share a cluster id
and a static voter set. ``start`` returns once a metadata request lists every node;
``stop`` sends SIGTERM and then kills. When a node fails, the error carries the tail of its
``server.log``.

``python -m services.brokers.apache_kafka [--nodes 3]`` runs one in the foreground and
prints ``KAFKA_BOOTSTRAP_SERVERS=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from services.common.processes import ChildProcess, free_port, port_answers, port_is_free

POM = Path(__file__).with_name("pom.xml")
MIN_JAVA = 17
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
T = TypeVar("T")
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class ApacheKafkaError(RuntimeError):
    """Apache Kafka could not be fetched or started; the message says why."""


def kafka_version() -> str:
    """The pinned broker version: ``kafka.version`` in services/brokers/pom.xml."""
    root = ET.parse(POM).getroot()  # noqa: S314 - the repository's own pom
    node = root.find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise ApacheKafkaError(f"{POM} has no <kafka.version> property")
    return (node.text or "").strip()


def cache_dir() -> Path:
    """Where the jars live: ``VOICEBUS_KAFKA_CACHE``, else ``~/.cache/voicebus/kafka-<v>``."""
    configured = os.environ.get("VOICEBUS_KAFKA_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "voicebus" / f"kafka-{kafka_version()}"


def _libs(cache: Path) -> Path:
    return cache / "libs"


def jars_cached(cache: Path | None = None) -> bool:
    """Whether the jar cache was filled completely (a marker is written last)."""
    cache = cache or cache_dir()
    return (cache / ".complete").exists() and any(_libs(cache).glob("kafka_2.13-*.jar"))


def java_binary() -> Path | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return Path(java_home) / "bin" / "java"
    found = shutil.which("java")
    return Path(found) if found else None


def java_major(java: Path) -> int | None:
    """The major version ``java -version`` reports (8 for ``1.8.0_x``), or None."""
    try:
        done = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def unavailable_reason() -> str | None:
    """Why Apache Kafka cannot run here (no Java 17+, or no Maven and no filled cache)."""
    java = java_binary()
    if java is None:
        return "no java on PATH (and no JAVA_HOME)"
    major = java_major(java)
    if major is None or major < MIN_JAVA:
        return f"{java} is Java {major or 'of unknown version'}; Apache Kafka 4 needs {MIN_JAVA}+"
    if not jars_cached() and shutil.which("mvn") is None:
        return f"no mvn on PATH to fetch the broker's jars into {cache_dir()}"
    return None


def ensure_jars(cache: Path | None = None, *, timeout: float = 600.0) -> Path:
    """Fill the jar cache once (with Maven), under a file lock; the ``libs`` folder."""
    cache = cache or cache_dir()
    if jars_cached(cache):
        return _libs(cache)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ApacheKafkaError(f"no mvn on PATH to fetch the broker's jars into {cache}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    with (cache.parent / f"{cache.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jars_cached(cache):
            return _libs(cache)
        staging = Path(tempfile.mkdtemp(prefix=f"{cache.name}-", dir=cache.parent))
        print(f"voicebus: fetching Apache Kafka {kafka_version()} jars into {cache}", flush=True)
        done = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging / 'libs'}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise ApacheKafkaError(f"mvn could not fetch the Kafka jars:\n{tail}")
        shutil.rmtree(cache, ignore_errors=True)
        staging.rename(cache)
        (cache / ".complete").write_text(kafka_version() + "\n")
    return _libs(cache)


@dataclass(frozen=True)
class ClientListener:
    """How clients reach the brokers: the security protocol and, for SASL, the users.

    ``users``: SASL user name → password, created in each node's storage (SCRAM) or in
    the JAAS configuration (PLAIN). ``keystore``: a PEM file holding the broker's private
    key (PKCS#8) and certificate chain, for SSL and SASL_SSL. ``truststore``: a PEM file of
    the CA(s) whose client certificates the brokers accept; with it a client certificate is
    required (mutual TLS).
    """

    protocol: str = "PLAINTEXT"
    mechanisms: tuple[str, ...] = ()
    users: Mapping[str, str] = field(default_factory=dict)
    keystore: Path | None = None
    truststore: Path | None = None

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def enabled_mechanisms(self) -> tuple[str, ...]:
        """The SASL mechanisms the listener enables (both SCRAM ones unless told)."""
        if not self.sasl:
            return ()
        return self.mechanisms or ("SCRAM-SHA-256", "SCRAM-SHA-512")

    def properties(self) -> dict[str, str]:
        """The CLIENT listener's server properties for TLS and SASL."""
        props: dict[str, str] = {}
        if self.tls:
            if self.keystore is None:
                raise ApacheKafkaError(f"{self.protocol} needs a keystore (PEM key and chain)")
            props |= {
                "listener.name.client.ssl.keystore.type": "PEM",
                "listener.name.client.ssl.keystore.location": str(self.keystore),
                "listener.name.client.ssl.client.auth": "none",
            }
            if self.truststore is not None:
                props |= {
                    "listener.name.client.ssl.truststore.type": "PEM",
                    "listener.name.client.ssl.truststore.location": str(self.truststore),
                    "listener.name.client.ssl.client.auth": "required",
                }
        if self.sasl:
            props["listener.name.client.sasl.enabled.mechanisms"] = ",".join(
                self.enabled_mechanisms
            )
            for mechanism in self.enabled_mechanisms:
                key = f"listener.name.client.{mechanism.lower()}.sasl.jaas.config"
                props[key] = _jaas(mechanism, self.users)
        return props

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments creating the SCRAM users."""
        return [
            item
            for mechanism in self.enabled_mechanisms
            if mechanism.startswith("SCRAM-")
            for name, password in self.users.items()
            for item in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]


def _jaas(mechanism: str, users: Mapping[str, str]) -> str:
    if mechanism == "PLAIN":
        entries = " ".join(f'user_{name}="{password}"' for name, password in users.items())
        return f"org.apache.kafka.common.security.plain.PlainLoginModule required {entries};"
    return "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass
class KafkaNode:
    """One combined broker + controller: its ports, directory and process."""

    node_id: int
    port: int
    controller_port: int
    internal_port: int
    directory: Path
    process: ChildProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.directory / "logs" / "server.log"

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        if self.log_file.exists():
            parts.append("\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:]))
        if self.process is not None and self.process.output.strip():
            parts.append(self.process.tail(lines))
        return "\n".join(parts) or "(the node wrote no log)"

    def running(self) -> bool:
        return self.process is not None and self.process.running()


LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class ApacheKafka:
    """A local Apache Kafka cluster of ``nodes`` KRaft nodes (1 or 3, say).

    ``broker_config``: extra server properties for every node. Internal topics get the
    replication a cluster of this size can give (3 with ``min.insync.replicas`` 2 on
    three nodes). ``ports``: fixed client ports (e.g. 19092 for ``make run``), else free.
    """

    def __init__(
        self,
        *,
        nodes: int = 1,
        directory: Path | None = None,
        ports: list[int] | None = None,
        listener: ClientListener | None = None,
        broker_config: Mapping[str, str] | None = None,
        heap: str = "-Xms128m -Xmx512m",
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.listener = listener or ClientListener()
        self.broker_config = dict(broker_config or {})
        self.heap = heap
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="voicebus-kafka-"))
        self.cluster_id = _cluster_id()
        wanted = list(ports or [])
        self.nodes = [
            KafkaNode(
                node_id=i + 1,
                port=wanted[i] if i < len(wanted) and port_is_free(wanted[i]) else free_port(),
                controller_port=free_port(),
                internal_port=free_port(),
                directory=self.directory / f"node-{i + 1}",
            )
            for i in range(nodes)
        ]
        self._libs: Path | None = None

    # -- addresses -------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    # -- configuration ---------------------------------------------------------------
    def _voters(self) -> str:
        return ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)

    def properties(self, node: KafkaNode) -> dict[str, str]:
        """The server.properties of ``node``."""
        replicas = min(3, len(self.nodes))
        min_isr = 2 if replicas >= 3 else 1  # the usual RF 3 / ISR 2
        client = self.listener.protocol
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": self._voters(),
            "listeners": (
                f"CLIENT://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{node.internal_port},"
                f"CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "advertised.listeners": (
                f"CLIENT://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{node.internal_port}"
            ),
            "listener.security.protocol.map": (
                f"CLIENT:{client},INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "log.dirs": str(node.directory / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            # Tests use 2-3 s consumer sessions; production brokers keep their 6 s floor.
            "group.min.session.timeout.ms": "1000",
            # A local broker: notice a dead node within seconds, clean and retain promptly.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "500",
            "log.cleaner.backoff.ms": "500",
            "log.retention.check.interval.ms": "5000",
            "delete.topic.enable": "true",
        }
        props |= self.listener.properties()
        props |= self.broker_config
        return props

    def _write_config(self, node: KafkaNode) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        (node.directory / "logs").mkdir(exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.properties(node).items()]
        node.properties_file.write_text("\n".join(lines) + "\n")
        (node.directory / "log4j2.properties").write_text(LOG4J2.format(log=node.log_file))

    def _java(self, *args: str, node: KafkaNode) -> list[str]:
        java = java_binary()
        if java is None or self._libs is None:
            raise ApacheKafkaError("no java on PATH (and no JAVA_HOME)")
        return [
            str(java),
            *self.heap.split(),
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.directory / 'logs'}",
            "-cp",
            f"{self._libs}/*",
            *args,
        ]

    def _format(self, node: KafkaNode) -> None:
        if (node.directory / "data" / "meta.properties").exists():
            return
        scram = self.listener.scram_arguments()
        command = self._java(
            STORAGE_TOOL,
            "format",
            "-t",
            self.cluster_id,
            "-c",
            str(node.properties_file),
            *scram,
            node=node,
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise ApacheKafkaError(
                f"formatting node {node.node_id} failed:\n{done.stdout}{done.stderr}"[-3000:]
            )

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> Self:
        reason = unavailable_reason()
        if reason is not None:
            raise ApacheKafkaError(reason)
        self._libs = ensure_jars()
        try:
            for node in self.nodes:
                self._write_config(node)
                self._format(node)
            for node in self.nodes:
                self.start_node(node.node_id, wait=False)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, node_id: int, *, wait: bool = True, timeout: float = 90.0) -> None:
        """(Re)start one node on its ports and data; with ``wait``, until the cluster answers."""
        node = self.node(node_id)
        if node.running():
            return
        process = ChildProcess(
            self._java(MAIN_CLASS, str(node.properties_file), node=node),
            name=f"kafka-{node.node_id}",
            log=node.directory / "logs" / "stdout.log",
        )
        process.start()
        node.process = process
        if wait:
            self.wait_ready(timeout, through=node)

    def wait_ready(self, timeout: float = 120.0, *, through: KafkaNode | None = None) -> None:
        """Until a metadata request, sent to ``through`` (else any node whose port answers),
        lists every running node as a broker."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and not node.running():
                    raise ApacheKafkaError(
                        f"Kafka node {node.node_id} exited "
                        f"({node.process.returncode}):\n{node.log_tail()}"
                    )
            running = [n for n in self.nodes if n.running()]
            asked = [
                n
                for n in ([through] if through else running)
                if port_answers("127.0.0.1", self._probe_port(n))
            ]
            if not asked:
                time.sleep(0.1)
                continue
            try:
                probed = ",".join(f"127.0.0.1:{self._probe_port(n)}" for n in asked)
                seen = _run(self._broker_ids(probed))
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last = repr(exc)
            else:
                if {n.node_id for n in running} <= seen:
                    return
                last = (
                    f"brokers {sorted(seen)} registered, waiting for {[n.node_id for n in running]}"
                )
            time.sleep(0.25)
        tails = "\n".join(f"--- node {n.node_id}\n{n.log_tail(30)}" for n in self.nodes)
        raise ApacheKafkaError(f"Kafka did not answer within {timeout}s ({last}):\n{tails}")

    def _probe_port(self, node: KafkaNode) -> int:
        """Where readiness is asked: the client port, or on a secured client listener the
        brokers' own plaintext one (the launcher holds no client credentials)."""
        return node.port if self.listener.protocol == "PLAINTEXT" else node.internal_port

    async def _broker_ids(self, bootstrap: str) -> set[int]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 5)
            cluster = await asyncio.wait_for(admin.describe_cluster(), 5)
            return {int(b["node_id"]) for b in cluster["brokers"]}
        finally:
            await admin.close()

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (its data stays): the crash case."""
        node = self.node(node_id)
        if node.process is not None:
            node.process.kill()

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """SIGTERM one node (controlled shutdown), then SIGKILL after ``timeout`` s."""
        node = self.node(node_id)
        if node.process is not None:
            node.process.stop(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every node (SIGTERM together, then SIGKILL) and remove a temporary directory."""
        running = [n.process for n in self.nodes if n.process is not None and n.process.running()]
        for process in running:
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            remaining = max(0.1, deadline - time.monotonic())
            process.stop(remaining)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 chars), never
    starting with ``-`` (as Kafka's own ids: the storage tool would read it as an option)."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a fresh event loop in a thread (callers may be inside a loop)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


@contextlib.contextmanager
def running(**options: Any) -> Iterator[ApacheKafka]:
    with ApacheKafka(**options) as kafka:
        yield kafka


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Apache Kafka (KRaft) in the foreground.")
    parser.add_argument("--nodes", type=int, default=1, help="1 (default) or 3 nodes")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("APACHE_KAFKA_PORT", "0")) or None
    )
    args = parser.parse_args(argv)
    kafka = ApacheKafka(nodes=args.nodes, ports=[args.port] if args.port else None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        kafka.start()
    except ApacheKafkaError as exc:
        print(f"voicebus: {exc}", file=sys.stderr)
        return 1
    print(f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}", flush=True)
    print(f"# Apache Kafka {kafka_version()}, data in {kafka.directory}", flush=True)
    try:
        while not stop.wait(0.5):
            dead = [n.node_id for n in kafka.nodes if not n.running()]
            if dead:
                print(f"voicebus: Kafka node(s) {dead} exited", file=sys.stderr)
                for node in kafka.nodes:
                    print(node.log_tail(20), file=sys.stderr)
                return 1
    finally:
        kafka.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
