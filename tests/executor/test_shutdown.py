"""SIGTERM with commands in flight (the executor as a real process, the sandbox slow).

* Enough grace: the executor finishes what it started, exits 0 within the grace period,
  and every command that got a result is committed; nothing without a result is committed
  past. A new executor in the same group then gives every other command its result.
* Too little grace: the executor gives up on the slow requests when the grace period ends,
  exits 0, and leaves them uncommitted; the next executor gets them again and each ends
  with a result: none lost.

Runs on a broker of its own when the suite uses the embedded one: every executor in a new
group reads the command topics from the beginning, and later tests should not replay these.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
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
from tests.support.kafka_admin import committed_offsets
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

NO_INGRESS = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def own_kafka_env(
    broker: test_broker.SuiteBroker, kafka_env: dict[str, str]
) -> Iterator[dict[str, str]]:
    """The suite's broker, or one of this module's own on Tansu (whose memory grows)."""
    if broker.kind != "tansu":
        yield kafka_env
        return
    with own_broker() as own:
        yield {
            **kafka_env,
            "KAFKA_BOOTSTRAP_SERVERS": own.bootstrap_servers,
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
        }


@dataclass
class Published:
    command_id: str
    partition: int
    offset: int


@dataclass
class Scenario:
    """What one SIGTERM scenario observed."""

    commands: list[Published]
    exit_code: int | None
    stop_seconds: float
    grace_seconds: float
    in_flight_at_sigterm: set[str]
    #: results published before the first executor exited (command ids)
    results_before: Counter[str]
    #: the group's committed offsets right after the first executor exited
    committed: dict[int, int]
    #: results after the second executor ran (command ids, all results counted)
    results_after: Counter[str]
    #: connect requests the sandbox received, by command id
    requests: Counter[str] = field(default_factory=Counter)
    first_log: str = ""
    #: the second executor's counters: commands it found in doubt (intent, no outcome) and
    #: commands it found already done
    in_doubt: int = 0
    duplicates: int = 0


def connect(command_id: str, n: int) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "from": f"+9198{n:08d}",
        "to": "+919812345678",
        "caller_id": "08047112345",
        "api": "v1",
        "status_events": ["terminal"],
    }


async def publish(bootstrap: str, commands: Sequence[dict[str, Any]]) -> list[Published]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(CALL_CONNECT, json.dumps(c).encode(), key=c["from"].encode())
            for c in commands
        ]
        metadata = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return [
        Published(c["command_id"], m.partition, m.offset)
        for c, m in zip(commands, metadata, strict=True)
    ]


def result_ids(facts: FactReader, prefix: str) -> Counter[str]:
    """Results of the scenario's commands (the warm-up command left out)."""
    return Counter(
        str(f.value["command_id"])
        for f in facts.matching(CALL_CONNECT_RESULT)
        if isinstance(f.value, dict)
        and str(f.value.get("command_id", "")).startswith(prefix)
        and not str(f.value["command_id"]).endswith("warm")
    )


async def run_scenario(
    kafka: dict[str, str],
    *,
    commands: int,
    bound: int,
    latency: float,
    grace: float,
) -> Scenario:
    """Warm up, publish ``commands``, SIGTERM while requests are in flight, look at what
    was published and committed, then let a second executor in the group finish."""
    run = f"sigterm-{uuid.uuid4().hex[:8]}-"
    bootstrap = kafka["KAFKA_BOOTSTRAP_SERVERS"]
    group = f"sigterm-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(
            SandboxServer(
                rate_limits_enabled=False,
                ring_seconds=0.05,
                talk_seconds=0.1,
                callback_retries=0,
            )
        )
        env = {
            **executor_env(kafka, sandbox, NO_INGRESS),
            "EXECUTOR_GROUP_ID": group,
            "EXECUTOR_MAX_IN_FLIGHT": str(bound),
            # no parking for a rate slot: a parked command comes back and runs even when
            # the bound is reached, and then all the commands would be in flight at once
            # instead of ``bound`` (with the rest waiting, to be left for the next owner)
            "EXECUTOR_MAX_RATE_WAITING": "0",
            "EXECUTOR_SHUTDOWN_GRACE_SECONDS": str(grace),
            "EXECUTOR_RECONCILE_POLL_SECONDS": "0.5",
            "EXOTEL_VOICE_CALLS_PER_MINUTE": "60000",
        }
        facts = await FactReader(bootstrap, [CALL_CONNECT_RESULT]).start()
        stack.push_async_callback(facts.stop)

        first = ServiceProcess("executor", env)
        stack.callback(first.kill)
        await asyncio.to_thread(first.start)
        # one command through first: the executor is in its group and consuming
        await publish(bootstrap, [connect(f"{run}warm", 99_999_999)])
        await facts.wait_for(
            CALL_CONNECT_RESULT, lambda f: f.value.get("command_id") == f"{run}warm", timeout=45
        )
        await sandbox.control.set_latency_async(latency)

        published = await publish(bootstrap, [connect(f"{run}{n:03d}", n) for n in range(commands)])

        in_flight: set[str] = set()

        async def requests_in_flight() -> None:
            entries = await sandbox.control.requests_async()
            in_flight.clear()
            in_flight.update(
                str(e["command_id"])
                for e in entries
                if str(e.get("command_id") or "").startswith(run)
                and e["answered_at"] is None
                and not str(e["command_id"]).endswith("warm")
            )

        deadline = time.monotonic() + 30
        while len(in_flight) < bound:
            assert time.monotonic() < deadline, f"never {bound} requests in flight: {in_flight}"
            await asyncio.sleep(0.05)
            await requests_in_flight()

        started = time.monotonic()
        exit_code = await asyncio.to_thread(first.stop, grace + 30)
        stop_seconds = time.monotonic() - started
        first_log = first.output
        # the results the first executor published are on the topic before it exited
        await asyncio.sleep(1.0)
        results_before = result_ids(facts, run)
        committed = await committed_offsets(bootstrap, group, CALL_CONNECT)

        await sandbox.control.set_latency_async(0)
        second = ServiceProcess("executor", env)
        stack.callback(second.kill)
        await asyncio.to_thread(second.start)
        ids = {p.command_id for p in published}
        await wait_until(
            lambda: ids <= set(result_ids(facts, run)),
            timeout=60,
            what="a result for every command",
        )
        await asyncio.sleep(1.0)  # duplicates, if any, would arrive now
        metrics = (await asyncio.to_thread(httpx.get, second.url + "/metrics", timeout=5)).text
        await asyncio.to_thread(second.stop)
        requests = Counter(
            str(e["command_id"])
            for e in await sandbox.control.requests_async()
            if e["method"] == "POST"
            and str(e.get("command_id") or "").startswith(run)
            and not str(e["command_id"]).endswith("warm")
        )
        return Scenario(
            commands=published,
            exit_code=exit_code,
            stop_seconds=stop_seconds,
            grace_seconds=grace,
            in_flight_at_sigterm=set(in_flight),
            results_before=results_before,
            committed=committed,
            results_after=result_ids(facts, run),
            requests=requests,
            first_log=first_log,
            in_doubt=counter(metrics, "voicebus_executor_in_doubt_commands_total"),
            duplicates=counter(metrics, "voicebus_executor_duplicate_commands_total"),
        )


def counter(metrics: str, name: str) -> int:
    """A counter's call.connect sample in Prometheus text (0 when absent)."""
    pattern = rf'^{re.escape(name)}{{command_type="call.connect"}} ([0-9.eE+-]+)$'
    match = re.search(pattern, metrics, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


# ---------------------------------------------------------------- enough grace


@pytest.fixture(scope="module")
async def finished(own_kafka_env: dict[str, str]) -> Scenario:
    """Sandbox answers after 1 s, 8 commands in flight, 5 s of grace."""
    return await run_scenario(own_kafka_env, commands=40, bound=8, latency=1.0, grace=5.0)


def test_sigterm_exits_0_within_the_grace_period(finished: Scenario) -> None:
    assert finished.exit_code == 0, finished.first_log[-3000:]
    assert finished.stop_seconds < finished.grace_seconds + 2, finished.stop_seconds


def test_in_flight_commands_are_finished_and_committed(finished: Scenario) -> None:
    # what was in flight when SIGTERM came had time to finish: it got its result ...
    assert finished.in_flight_at_sigterm <= set(finished.results_before)
    # ... and every command with a result was committed
    for command in finished.commands:
        if command.command_id in finished.results_before:
            assert command.offset < finished.committed.get(command.partition, 0), command


def test_nothing_without_a_result_is_committed(finished: Scenario) -> None:
    for command in finished.commands:
        if command.offset < finished.committed.get(command.partition, 0):
            assert command.command_id in finished.results_before, command
    # the grace period was not long enough for everything: some work was left to the next
    assert len(finished.results_before) < len(finished.commands)


def test_the_next_executor_gives_every_command_its_result(finished: Scenario) -> None:
    assert {c.command_id for c in finished.commands} <= set(finished.results_after)
    # nothing was left half-done: no intent without an outcome for the next one to untangle
    assert finished.in_doubt == 0


def test_after_sigterm_each_command_has_exactly_one_result_and_one_request(
    finished: Scenario,
) -> None:
    assert all(n == 1 for n in finished.results_after.values()), finished.results_after
    assert all(n == 1 for n in finished.requests.values()), finished.requests


# ---------------------------------------------------------------- grace too short


@pytest.fixture(scope="module")
async def cut_short(own_kafka_env: dict[str, str]) -> Scenario:
    """Sandbox answers after 4 s, 6 commands in flight, 1 s of grace: the executor must
    give up on them, and the next one must get them again."""
    return await run_scenario(own_kafka_env, commands=6, bound=6, latency=4.0, grace=1.0)


def test_grace_too_short_still_exits_0_promptly(cut_short: Scenario) -> None:
    assert cut_short.exit_code == 0, cut_short.first_log[-3000:]
    assert cut_short.stop_seconds < cut_short.grace_seconds + 3, cut_short.stop_seconds


def test_work_cut_short_is_left_uncommitted(cut_short: Scenario) -> None:
    assert not cut_short.results_before
    for command in cut_short.commands:
        assert command.offset >= cut_short.committed.get(command.partition, 0), command


def test_work_cut_short_is_redelivered_and_none_is_lost(cut_short: Scenario) -> None:
    assert {c.command_id for c in cut_short.commands} <= set(cut_short.results_after)
    # the next executor knew they had been started (intent recorded) and reconciled them
    assert cut_short.in_doubt == len(cut_short.commands)


def test_work_cut_short_ends_with_exactly_one_result_each(cut_short: Scenario) -> None:
    """The interrupted requests may have reached Exotel: the next executor must find those
    calls (reconciliation), not place them again, and publish one result per command."""
    assert all(n == 1 for n in cut_short.results_after.values()), cut_short.results_after
    assert all(n == 1 for n in cut_short.requests.values()), cut_short.requests
