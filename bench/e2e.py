"""End-to-end latency per command type at low load, against a raw consumer in the same run.

For each command type (``call.connect``, ``lwb.action``, ``leg.hangup``) the bench
publishes one command at a time, each only after the previous one's result arrived (so
nothing else is in flight for the call, and the executor is otherwise idle), and takes two
figures per command, from one wall clock (everything runs on this machine):

* publish → first request: the command record's timestamp (set by the bench as it
  sends) to the first Exotel request of the command the sandbox logged (``call.connect``:
  the connect POST with the agent's number; ``lwb.action`` / ``leg.hangup``: the first
  request on the call after the publish, the active-legs lookup);
* publish → result: to the result record's timestamp (the executor's producer).

One iteration is one call: ``call.connect`` to a number the sandbox keeps talking, wait
until it is connected, ``lwb.action`` listen, then ``leg.hangup`` of the agent (ending the
call). The executor runs twice, with ``EXECUTOR_TRANSACTIONS=on`` (the intent of a
``call.connect`` / ``leg.hangup`` commits in a Kafka transaction before the request, and
the outcome, result and offset in one transaction) and ``=off``.

The baseline is :mod:`bench.baseline` (aiokafka consumer → httpx POST of the v1 connect →
aiokafka producer, nothing else) fed the same ``call.connect`` commands the same way: the
floor of consume → HTTP → produce on this machine. Ratios are executor / baseline p50 and
p99 (targets: ``call.connect`` p99 within 1.5 x of the baseline's; ``lwb.action`` and
``leg.hangup`` publish → result p50 ≤ 30 ms).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.harness import PARTITIONS, Bench, Process, bench_stack, create_topics
from bench.throughput import BASELINE_COMMANDS, BASELINE_RESULTS, Figure, baseline_process
from contracts.topics import (
    CALL_CONNECT,
    CALL_CONNECT_RESULT,
    LEG_HANGUP,
    LEG_HANGUP_RESULT,
    LWB_ACTION,
    LWB_ACTION_RESULT,
)

#: Calls to ...5555 stay connected until hung up; the lifecycle otherwise at its defaults
#: (queued 50 ms, ringing 300 ms). Callbacks go nowhere and are not retried.
LIVE_SANDBOX = {
    "SANDBOX_QUEUE_SECONDS": "0.05",
    "SANDBOX_CALLBACK_RETRIES": "0",
    "SANDBOX_CALLBACK_TIMEOUT_SECONDS": "1",
}
CUSTOMER = "+919812345555"
TYPES = (CALL_CONNECT, LWB_ACTION, LEG_HANGUP)
RESULT_TOPICS = {
    CALL_CONNECT: CALL_CONNECT_RESULT,
    LWB_ACTION: LWB_ACTION_RESULT,
    LEG_HANGUP: LEG_HANGUP_RESULT,
    BASELINE_COMMANDS: BASELINE_RESULTS,
}
#: iterations left out at the start of each contender (connections, caches, JIT-less warmup)
WARM_UP = 5


@dataclass
class Samples:
    """Milliseconds per command: publish → first request, publish → result."""

    first_request: list[float] = field(default_factory=list)
    result: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values: list[float]) -> str:
    return f"p50 {percentile(values, 0.5):.1f} p99 {percentile(values, 0.99):.1f} ms"


class Results:
    """Reads every result topic from the end on; ``wait(topic, command_id)`` returns the
    result record's timestamp (ms) and value."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._seen: dict[str, tuple[int, dict[str, Any]]] = {}
        self._arrived = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Results:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        await consumer.start()
        consumer.assign(
            [TopicPartition(t, p) for t in set(RESULT_TOPICS.values()) for p in range(PARTITIONS)]
        )
        await consumer.seek_to_end()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            value = json.loads(record.value) if record.value else {}
            self._seen[str(value.get("command_id"))] = (record.timestamp, value)
            self._arrived.set()

    async def wait(self, command_id: str, timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while command_id not in self._seen:
                self._arrived.clear()
                await self._arrived.wait()
        return self._seen.pop(command_id)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


@dataclass
class Driver:
    """Publishes one command, waits for its result, finds its first request."""

    bench: Bench
    producer: AIOKafkaProducer
    results: Results
    samples: dict[str, Samples]
    measuring: bool = False
    #: the sandbox's last request sequence number seen
    seq: int = 0

    async def command(
        self,
        topic: str,
        command: dict[str, Any],
        *,
        key: str,
        first_request: Callable[[list[dict[str, Any]]], dict[str, Any] | None],
        call_sid: str | None = None,
    ) -> dict[str, Any]:
        since = await self._last_request_seq()
        control = self.bench.sandbox.control
        published_ms = int(time.time() * 1000)
        await self.producer.send_and_wait(
            topic, json.dumps(command).encode(), key=key.encode(), timestamp_ms=published_ms
        )
        result_ms, result = await self.results.wait(command["command_id"])
        requests = await control.requests_async(since=since, call_sid=call_sid)
        first = first_request(requests)
        if first is None:
            raise RuntimeError(f"no request of {topic} {command['command_id']} at the sandbox")
        if self.measuring:
            samples = self.samples.setdefault(topic, Samples())
            first_ms = datetime.fromisoformat(first["at"]).timestamp() * 1000
            samples.first_request.append(first_ms - published_ms)
            samples.result.append(result_ms - published_ms)
        return result

    async def _last_request_seq(self) -> int:
        entries = await self.bench.sandbox.control.requests_async(since=self.seq)
        if entries:
            self.seq = int(entries[-1]["seq"])
        return self.seq


def _from_number(number: str) -> Callable[[list[dict[str, Any]]], dict[str, Any] | None]:
    def first(requests: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((r for r in requests if (r["form"] or {}).get("From") == number), None)

    return first


def _first_any(requests: list[dict[str, Any]]) -> dict[str, Any] | None:
    return requests[0] if requests else None


async def _call_iteration(driver: Driver, run: str, index: int) -> None:
    agent = f"+9197{index:08d}"
    connected = await driver.command(
        CALL_CONNECT,
        {
            "command_id": f"{run}-c{index}",
            "from": agent,
            "to": CUSTOMER,
            "caller_id": "08047112345",
            "api": "v1",
        },
        key=agent,
        first_request=_from_number(agent),
    )
    call_sid = str(connected["call_sid"])
    await driver.bench.sandbox.control.wait_for_call_async(
        call_sid, lambda call: call["phase"] == "connected", timeout=15
    )
    for topic, fields in (
        (LWB_ACTION, {"action": "listen", "supervisor": f"+9198{index:08d}"}),
        (LEG_HANGUP, {"leg": "agent"}),
    ):
        result = await driver.command(
            topic,
            {"command_id": f"{run}-{topic}-{index}", "call_sid": call_sid, **fields},
            key=call_sid,
            first_request=_first_any,
            call_sid=call_sid,
        )
        if result.get("outcome") != "accepted":
            raise RuntimeError(f"{topic} on {call_sid}: {result}")


async def _baseline_iteration(driver: Driver, run: str, index: int) -> None:
    agent = f"+9196{index:08d}"
    await driver.command(
        BASELINE_COMMANDS,
        {
            "command_id": f"{run}-b{index}",
            "from": agent,
            "to": "+919812345678",
            "caller_id": "08047112345",
        },
        key=agent,
        first_request=_from_number(agent),
    )


async def _contender(
    bench: Bench,
    process: Process,
    iteration: Callable[[Driver, str, int], Awaitable[None]],
    count: int,
) -> dict[str, Samples]:
    samples: dict[str, Samples] = {}
    results = await Results(bench.bootstrap).start()
    producer = AIOKafkaProducer(
        bootstrap_servers=bench.bootstrap, acks="all", linger_ms=0, enable_idempotence=False
    )
    await producer.start()
    try:
        await asyncio.to_thread(process.start, ready_path=None)
        try:
            driver = Driver(bench, producer, results, samples)
            run = f"e{uuid.uuid4().hex[:6]}"
            for index in range(WARM_UP + count):
                driver.measuring = index >= WARM_UP
                await iteration(driver, run, index)
                await asyncio.sleep(0.02)  # low load: a pause between iterations
        finally:
            await asyncio.to_thread(process.stop)
    finally:
        await producer.stop()
        await results.stop()
        await bench.sandbox.control.aclose()
    return samples


def _executor(bench: Bench, transactions: str) -> Process:
    return bench.executor(
        EXECUTOR_GROUP_ID=f"bench-e2e-{transactions}-{uuid.uuid4().hex[:6]}",
        EXECUTOR_TRANSACTIONS=transactions,
        EXECUTOR_CALL_WATCH_ENABLED="false",
        EXECUTOR_CALL_DETAILS_ENABLED="false",
    )


async def end_to_end(count: int = 120) -> Figure:
    async with bench_stack(SANDBOX_RATE_LIMITS_ENABLED="false", **LIVE_SANDBOX) as bench:
        await create_topics(bench.bootstrap, [BASELINE_COMMANDS, BASELINE_RESULTS])
        baseline = await _contender(
            bench,
            baseline_process(bench, f"bench-e2e-baseline-{uuid.uuid4().hex[:6]}", 64),
            _baseline_iteration,
            count,
        )
        modes = ("on", "off") if bench.transactions else ("off",)
        executor = {
            mode: await _contender(bench, _executor(bench, mode), _call_iteration, count)
            for mode in modes
        }
    floor = baseline[BASELINE_COMMANDS]
    details: dict[str, float | int | str] = {
        "baseline connect first_request": summary(floor.first_request),
        "baseline connect result": summary(floor.result),
        "commands_per_type": count,
    }
    for mode, samples in executor.items():
        for topic in TYPES:
            got = samples[topic]
            details[f"tx {mode} {topic} first_request"] = summary(got.first_request)
            details[f"tx {mode} {topic} result"] = summary(got.result)
    headline = executor.get("off") or next(iter(executor.values()))
    connect = headline[CALL_CONNECT]
    ratio = percentile(connect.first_request, 0.99) / percentile(floor.first_request, 0.99)
    lwb = statistics.median(headline[LWB_ACTION].result)
    hangup = statistics.median(headline[LEG_HANGUP].result)
    details["connect_p99_first_request_ratio"] = round(ratio, 2)
    for mode, samples in executor.items():
        details[f"tx {mode} connect p99 first_request / baseline"] = round(
            percentile(samples[CALL_CONNECT].first_request, 0.99)
            / percentile(floor.first_request, 0.99),
            2,
        )
    return Figure(
        "e2e",
        ratio,
        f"e2e: call.connect publish->first request p99 executor/baseline = {ratio:.2f} "
        f"(target <= 1.5); lwb.action p50 {lwb:.1f} ms, leg.hangup p50 {hangup:.1f} ms "
        f"publish->result (target <= 30), transactions off; {count} per type",
        details,
    )
