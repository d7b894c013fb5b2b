"""kcat, librdkafka's command-line client, in tests: publish a message, follow topics.

kcat needs a real Kafka: on Tansu (``VOICEBUS_BROKER=tansu``) it cannot even negotiate API
versions, so tests that use it skip there and say so.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import pytest

from services.common.processes import ChildProcess, wait_until
from tests.support.broker import SuiteBroker
from tests.support.tools import tool

TANSU_REASON = (
    "Tansu cannot serve librdkafka clients such as kcat "
    "(ApiVersionRequest failed: Local: Read underflow): kcat needs a real Kafka "
    "(Java 17+ and Maven for the local Apache Kafka, or KAFKA_BOOTSTRAP_SERVERS)"
)


def kcat_for(broker: SuiteBroker) -> str:
    """kcat's path, or skip: on Tansu, or where kcat cannot be installed."""
    if broker.kind == "tansu":
        pytest.skip(TANSU_REASON)
    return tool("kcat")


def kcat_produce(
    bootstrap: str,
    topic: str,
    value: str,
    *,
    key: str | None = None,
    headers: Mapping[str, str] | None = None,
    partitioner: str | None = None,
) -> None:
    """Publish one message (``value`` on one line) with ``kcat -P``; fail with its stderr.

    ``partitioner``: librdkafka's ``partitioner`` setting (its default is CRC32-based;
    ``murmur2_random`` hashes keys as Java's clients and aiokafka do).
    """
    assert "\n" not in value, "kcat -P sends one message per line"
    command = [tool("kcat"), "-P", "-b", bootstrap, "-t", topic]
    if partitioner is not None:
        command += ["-X", f"partitioner={partitioner}"]
    if key is not None:
        command += ["-k", key]
    for name, header in (headers or {}).items():
        command += ["-H", f"{name}={header}"]
    done = subprocess.run(
        command, input=value + "\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kcat -P failed ({done.returncode}): {done.stderr}"


@dataclass(frozen=True)
class KcatRecord:
    """One message as ``kcat -C -J`` printed it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    payload: str | None

    @property
    def value(self) -> Any:
        """The payload as JSON; None when empty or not JSON (a dead letter, say, or the
        poison commands other tests publish on purpose, nested past the parser's depth)."""
        try:
            return json.loads(self.payload) if self.payload else None
        except (ValueError, RecursionError):
            return None

    @classmethod
    def parse(cls, line: str) -> KcatRecord | None:
        """The record on one line of ``-J`` output; None for anything else (a partial line)."""
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict) or "topic" not in data:
            return None
        flat = data.get("headers") or []  # kcat prints [name, value, name, value, …]
        return cls(
            topic=data["topic"],
            partition=data["partition"],
            offset=data["offset"],
            key=data.get("key"),
            headers=dict(zip(flat[::2], flat[1::2], strict=True)),
            payload=data.get("payload"),
        )


#: From the start, as JSON with headers, quiet, one line each as soon as it is read.
FOLLOW = ("-o", "beginning", "-J", "-q", "-u")


class KcatFollower:
    """``kcat -C -J -o beginning`` on each topic, as child processes, until closed.

    One process per topic: kcat's simple consumer reads a single topic (a second ``-t``
    replaces the first).
    """

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self.processes = {
            topic: ChildProcess(
                [tool("kcat"), "-C", "-b", bootstrap, "-t", topic, *FOLLOW],
                name=f"kcat-{topic}",
            )
            for topic in topics
        }

    def start(self) -> Self:
        for process in self.processes.values():
            process.start()
        return self

    def close(self) -> None:
        for process in self.processes.values():
            process.stop(timeout=5)
            process.cleanup()

    def records(self, topic: str) -> list[KcatRecord]:
        lines = self.processes[topic].output.splitlines()
        return [record for line in lines if (record := KcatRecord.parse(line)) is not None]

    def wait_for(
        self,
        topic: str,
        predicate: Callable[[KcatRecord], bool],
        *,
        count: int = 1,
        timeout: float = 45.0,
    ) -> list[KcatRecord]:
        """Wait until ``count`` records on ``topic`` match; fail with kcat's output otherwise."""

        def matching() -> list[KcatRecord]:
            return [record for record in self.records(topic) if predicate(record)]

        if not wait_until(lambda: len(matching()) >= count, timeout, interval=0.1):
            process = self.processes[topic]
            raise AssertionError(
                f"waited {timeout}s for {count} record(s) on {topic} read by kcat; "
                f"got {len(matching())}; kcat running: {process.running()}; "
                f"its output ends:\n{process.tail(10)[-3000:]}"
            )
        return matching()


@contextlib.contextmanager
def kcat_following(bootstrap: str, topics: Sequence[str]) -> Iterator[KcatFollower]:
    """A started ``KcatFollower``, closed afterwards."""
    follower = KcatFollower(bootstrap, topics).start()
    try:
        yield follower
    finally:
        follower.close()
