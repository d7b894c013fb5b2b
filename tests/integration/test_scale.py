"""The executor at scale: several replicas share one Exotel rate limit; different calls run
concurrently while one call's commands keep their order.

Both tests publish far more commands than the other integration tests, and every executor
in a new consumer group reads the command topics from the beginning; on the embedded
broker this module therefore runs on a broker of its own, so no later test replays them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT
from services.sandbox.testing import SandboxServer
from tests.integration.stack import executor_env
from tests.support import broker as test_broker
from tests.support.broker import own_broker
from tests.support.facts import FactReader, wait_until
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

#: Nobody listens here: these tests are about requests, not status callbacks.
NO_INGRESS = "http://127.0.0.1:9"
#: Calls stay queued: no lifecycle timers or callbacks compete for the CPU.
QUIET = {"SANDBOX_QUEUE_SECONDS": "3600"}
SHARE = "voicebus_executor_rate_limit_share"


@pytest.fixture(scope="module")
def scale_kafka_env(
    broker: test_broker.SuiteBroker, kafka_env: dict[str, str]
) -> Iterator[dict[str, str]]:
    """A broker of this module's own, of the suite's kind: its topics get 12 partitions
    (the suite's were created with fewer)."""
    with own_broker() as own:
        yield {
            **kafka_env,
            "KAFKA_BOOTSTRAP_SERVERS": own.bootstrap_servers,
            "KAFKA_ENABLE_IDEMPOTENCE": str(own.supports_transactions).lower(),
            "KAFKA_TOPIC_PARTITIONS": "12",
        }


def connect(command_id: str, agent: str) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "from": agent,
        "to": "+919812345678",
        "caller_id": "08047112345",
        "api": "v1",
    }


async def publish_commands(
    bootstrap: str, commands: Sequence[dict[str, Any]], *, per_second: float | None = None
) -> None:
    """Publish in order, keyed by the agent number (as producers are told to)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        sent = []
        for index, command in enumerate(commands):
            if per_second is not None:
                await asyncio.sleep(max(0.0, started + index / per_second - time.monotonic()))
            sent.append(
                await producer.send(
                    CALL_CONNECT, json.dumps(command).encode(), key=command["from"].encode()
                )
            )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def ours(prefix: str) -> Any:
    return lambda fact: (
        isinstance(fact.value, dict) and str(fact.value.get("command_id", "")).startswith(prefix)
    )


def results_by_command(facts: FactReader, prefix: str) -> Counter[str]:
    return Counter(f.value["command_id"] for f in facts.matching(CALL_CONNECT_RESULT, ours(prefix)))


async def wait_for_all_results(
    facts: FactReader, prefix: str, count: int, timeout: float, executors: Sequence[ServiceProcess]
) -> None:
    def done() -> bool:
        for executor in executors:
            assert executor.process is not None
            if executor.process.poll() is not None:
                raise AssertionError(f"executor exited:\n{executor.output[-3000:]}")
        return len(results_by_command(facts, prefix)) >= count

    await wait_until(done, timeout=timeout, what=f"{count} results for {prefix}*")


def rate_share(executor: ServiceProcess) -> float | None:
    try:
        text = httpx.get(executor.url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    match = re.search(rf"^{SHARE} ([0-9.eE+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def settled_shares(executors: Sequence[ServiceProcess], timeout: float = 45) -> list[float]:
    """The replicas' rate shares once the group is stable: each below 1, summing to 1,
    unchanged for two seconds."""
    deadline = time.monotonic() + timeout
    last: list[float | None] = []
    stable_since: float | None = None
    while time.monotonic() < deadline:
        shares = [await asyncio.to_thread(rate_share, e) for e in executors]
        known = [s for s in shares if s is not None]
        settled = len(known) == len(shares) and all(s < 1.0 for s in known)
        if settled and abs(sum(known) - 1.0) < 1e-6 and shares == last:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 2.0:
                return known
        else:
            stable_since = None
        last = shares
        await asyncio.sleep(0.25)
    raise AssertionError(f"the group never settled; shares {last}")


@asynccontextmanager
async def executors_running(envs: Sequence[dict[str, str]]) -> AsyncIterator[list[ServiceProcess]]:
    """Start the executors side by side (each waits for its /readyz); SIGTERM them after."""
    processes = [ServiceProcess("executor", env) for env in envs]
    async with AsyncExitStack() as stack:
        for process in processes:
            stack.push_async_callback(asyncio.to_thread, process.stop)
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))
        yield processes


def most_in_any_window(per_second: Sequence[dict[str, int]], seconds: int) -> int:
    """The most requests the sandbox accepted in any ``seconds`` consecutive seconds."""
    counts = {int(b["second"]): int(b["count"]) for b in per_second}
    if not counts:
        return 0
    return max(
        sum(counts.get(s, 0) for s in range(start, start + seconds))
        for start in range(min(counts), max(counts) + 1)
    )


LIMIT_PER_MINUTE = 120  # 2 requests/s for the whole account
REPLICAS = 3
OFFERED_PER_SECOND = 6.0  # three times the limit
OFFERED_COMMANDS = 60


async def test_three_replicas_together_stay_within_the_account_limit(
    scale_kafka_env: dict[str, str],
) -> None:
    """Each replica alone may send L/min; in one group their sum must stay within L.

    Without sharing, three replicas would send 3 L/min (the sandbox would answer 429 once
    its minute window filled); with each replica throttled to the share of partitions it
    owns, the sandbox never sees more than L/60 per second on average, and no 429.
    """
    run = f"scale-{uuid.uuid4().hex[:8]}-"
    bootstrap = scale_kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(
            SandboxServer(voice_calls_per_minute=LIMIT_PER_MINUTE, env=QUIET)
        )
        group = f"scale-{uuid.uuid4().hex[:8]}"
        env = {
            **executor_env(scale_kafka_env, sandbox, NO_INGRESS),
            "EXECUTOR_GROUP_ID": group,
            "EXOTEL_VOICE_CALLS_PER_MINUTE": str(LIMIT_PER_MINUTE),
        }
        executors = await stack.enter_async_context(executors_running([env] * REPLICAS))
        shares = await settled_shares(executors)
        assert sum(shares) == pytest.approx(1.0)

        facts = await FactReader(bootstrap, [CALL_CONNECT_RESULT]).start()
        stack.push_async_callback(facts.stop)
        await sandbox.control.reset_rate_stats_async()
        commands = [connect(f"{run}{n:03d}", f"+9198{n:08d}") for n in range(OFFERED_COMMANDS)]
        started = time.monotonic()
        await publish_commands(bootstrap, commands, per_second=OFFERED_PER_SECOND)
        # the group's budget is 2/s: 60 commands need about 30 s
        await wait_for_all_results(facts, run, OFFERED_COMMANDS, 75, executors)
        elapsed = time.monotonic() - started
        stats = (await sandbox.control.rate_stats_async())["families"]["voice"]

    results = results_by_command(facts, run)
    assert set(results) == {c["command_id"] for c in commands}
    assert all(n == 1 for n in results.values()), results.most_common(3)
    outcomes = Counter(f.value["outcome"] for f in facts.matching(CALL_CONNECT_RESULT, ours(run)))
    assert outcomes == {"accepted": OFFERED_COMMANDS}, outcomes

    assert stats["rejected_429"] == 0, stats
    assert stats["accepted"] == OFFERED_COMMANDS, stats
    assert stats["max_in_any_minute"] <= LIMIT_PER_MINUTE, stats
    # The sum of the replicas' rates is the account's, not three times it: in any 10 s
    # at most 10 * L/60 requests, plus one early grant per replica (GCRA, burst 1) and one
    # for a bucket boundary. Unshared replicas would send 6/s here (~60 in 10 s).
    per_10s = most_in_any_window(stats["per_second"], 10)
    assert per_10s <= 10 * LIMIT_PER_MINUTE / 60 + REPLICAS + 1, (per_10s, stats["per_second"])
    # ... and the group used its budget rather than starving (60 commands at 2/s: ~30 s).
    assert elapsed < OFFERED_COMMANDS / (LIMIT_PER_MINUTE / 60) * 1.6, elapsed


LATENCY = 0.2
BOUND = 20
DISTINCT = 100
SAME_KEY = 10


async def test_distinct_keys_run_concurrently_and_one_key_keeps_publish_order(
    scale_kafka_env: dict[str, str],
) -> None:
    run = f"conc-{uuid.uuid4().hex[:8]}-"
    bootstrap = scale_kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(
            SandboxServer(rate_limits_enabled=False, env=QUIET)
        )
        env = {
            **executor_env(scale_kafka_env, sandbox, NO_INGRESS),
            "EXECUTOR_MAX_IN_FLIGHT": str(BOUND),
            "EXOTEL_VOICE_CALLS_PER_MINUTE": "1000000",
        }
        (executor,) = await stack.enter_async_context(executors_running([env]))
        facts = await FactReader(bootstrap, [CALL_CONNECT_RESULT]).start()
        stack.push_async_callback(facts.stop)
        # one command first: the executor has joined its group and is consuming
        await publish_commands(bootstrap, [connect(f"{run}warm", "+919700000000")])
        await wait_for_all_results(facts, f"{run}warm", 1, 45, [executor])
        await sandbox.control.set_latency_async(LATENCY)

        distinct = [connect(f"{run}d{n:03d}", f"+9198{n:08d}") for n in range(DISTINCT)]
        started = time.monotonic()
        await publish_commands(bootstrap, distinct)
        await wait_for_all_results(facts, f"{run}d", DISTINCT, 60, [executor])
        concurrent_seconds = time.monotonic() - started

        agent = "+919811112222"
        one_key = [connect(f"{run}k{n:02d}", agent) for n in range(SAME_KEY)]
        await publish_commands(bootstrap, one_key)
        await wait_for_all_results(facts, f"{run}k", SAME_KEY, 60, [executor])
        requests = await sandbox.control.requests_async()

    serial_seconds = DISTINCT * LATENCY
    assert concurrent_seconds < 0.4 * serial_seconds, (concurrent_seconds, serial_seconds)
    assert all(n == 1 for n in results_by_command(facts, run).values())

    logged = [r for r in requests if str(r.get("command_id") or "").startswith(f"{run}k")]
    assert [r["command_id"] for r in logged] == [c["command_id"] for c in one_key]
    # one after another: each request of the key starts after the previous one was answered
    for before, after in itertools.pairwise(logged):
        assert datetime.fromisoformat(after["at"]) >= datetime.fromisoformat(
            before["answered_at"]
        ), (before, after)
