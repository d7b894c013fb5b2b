"""Exactly one result per command where the broker has transactions: kill -9 the executor
ten times while 500 call.connect flow; a ``read_committed`` consumer of the result topic
sees each command_id once, and Exotel (the sandbox) sees each command at most once.

The outcome, the result and the command's offset commit in one Kafka transaction, so a
command whose result is visible is never delivered again, and a killed executor's open
transaction is aborted when the next one takes the partition over (fencing)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import CALL_CONNECT_RESULT
from services.sandbox.testing import SandboxServer
from tests.integration.stack import ingress_env
from tests.support.broker import SuiteBroker
from tests.support.crashes import crashing_executor_env, kill_repeatedly, publish_connects
from tests.support.facts import FactReader, wait_until
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(420)]

COMMANDS = 500
KILLS = 10


async def test_ten_kills_leave_one_result_per_command_and_one_call_at_most(
    broker: SuiteBroker, kafka_env: dict[str, str]
) -> None:
    if not broker.transactions:
        pytest.skip(f"exactly one result needs Kafka transactions (this run: {broker.kind})")
    run = uuid.uuid4().hex[:8]
    prefix = f"once-{run}-"
    with (
        SandboxServer(
            ring_seconds=0.02, talk_seconds=0.05, voice_calls_per_minute=60000
        ) as sandbox,
        ServiceProcess("ingress", ingress_env(kafka_env)) as ingress,
    ):
        env = crashing_executor_env(kafka_env, sandbox, ingress.url, f"once-{run}")
        reader = await FactReader(broker.bootstrap_servers, [CALL_CONNECT_RESULT]).start()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        await producer.start()
        ids = [f"{prefix}{n:04d}" for n in range(COMMANDS)]

        async def publish_all() -> None:
            await publish_connects(producer, ids, pause_every=10)

        def answered() -> list[str]:
            return [
                f.value["command_id"]
                for f in reader.matching(CALL_CONNECT_RESULT)
                if isinstance(f.value, dict) and f.value.get("command_id", "").startswith(prefix)
            ]

        started = time.monotonic()
        try:
            publishing = asyncio.create_task(publish_all())
            executor = await kill_repeatedly(
                env, lambda: len(set(answered())), kills=KILLS, every=25, total=COMMANDS
            )
            await publishing
            await wait_until(
                lambda: set(answered()) >= set(ids),
                timeout=180,
                what=f"a result for each of the {COMMANDS} commands",
            )
            await asyncio.sleep(1)  # a late duplicate, if any, shows up too
            executor.stop()
        finally:
            await producer.stop()
            await reader.stop()
        posts = Counter(
            r["command_id"]
            for r in sandbox.control.requests()
            if r["method"] == "POST" and str(r.get("command_id", "")).startswith(prefix)
        )
    results = Counter(answered())
    outcomes = Counter(
        f.value["outcome"]
        for f in reader.matching(CALL_CONNECT_RESULT)
        if isinstance(f.value, dict) and f.value.get("command_id", "").startswith(prefix)
    )
    print(
        f"\n{KILLS} x kill -9 under {COMMANDS} commands in {time.monotonic() - started:.0f} s: "
        f"{len(results)} command ids, {sum(results.values())} result records "
        f"({sum(n - 1 for n in results.values())} duplicates), "
        f"{sum(posts.values())} calls placed, outcomes {dict(outcomes)}"
    )
    assert set(results) == set(ids), "every command has a result"
    assert {c: n for c, n in results.items() if n > 1} == {}, "no result twice"
    assert {c: n for c, n in posts.items() if n > 1} == {}, "nobody rung twice"
