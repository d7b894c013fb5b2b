"""The command ledger is a compacted topic, and compaction really runs on Apache Kafka:
each command's intent is superseded by its outcome under the same key and cleaned away.
An executor started on the compacted ledger still answers duplicates from it: the same
result again, and no second call to Exotel."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT
from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings
from services.executor.state.records import LEDGER_TOPIC, LEDGER_TOPIC_CONFIG
from tests.integration.stack import Stack, executor_env, publish, running_stack
from tests.support.broker import OwnApacheKafka, OwnTansu, SuiteBroker, own_broker
from tests.support.facts import Fact, FactReader
from tests.support.kafka_admin import describe
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

COMMANDS = 12
#: Segments roll after a second and the cleaner takes any dirty segment: compaction within
#: seconds instead of the production defaults' days.
FAST_COMPACTION = {
    **LEDGER_TOPIC_CONFIG,
    "segment.ms": "1000",
    "min.cleanable.dirty.ratio": "0.001",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "1000",
}


@pytest.fixture(scope="module")
def kafka(broker: SuiteBroker) -> Iterator[OwnApacheKafka | OwnTansu]:
    if not broker.is_apache_kafka:
        pytest.skip(f"Tansu does not compact (this run: {broker.kind})")
    with own_broker() as own:
        yield own


@pytest.fixture(scope="module")
def kafka_env(kafka: OwnApacheKafka | OwnTansu, kafka_env: dict[str, str]) -> dict[str, str]:
    return {**kafka_env, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str], kafka_settings: KafkaSettings) -> Iterator[Stack]:
    settings = kafka_settings.model_copy(
        update={"bootstrap_servers": kafka_env["KAFKA_BOOTSTRAP_SERVERS"]}
    )
    # Created before the executor starts it, with configs that compact quickly.
    asyncio.run(ensure_topics(settings, [LEDGER_TOPIC], configs={LEDGER_TOPIC: FAST_COMPACTION}))
    with running_stack(kafka_env) as running:
        yield running


def connect(command_id: str) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "from": "+919876543210",
        "to": "+919812345678",
        "caller_id": "08047112345",
        "status_events": ["terminal"],
    }


def answers(command_id: str) -> Callable[[Fact], bool]:
    return lambda fact: fact.value["command_id"] == command_id


async def ledger_keys(bootstrap: str) -> tuple[Counter[str], int]:
    """How many records each key has on the ledger, read from its beginning now, and how
    many were ever written (the sum of the end offsets)."""
    (described,) = await describe(bootstrap, [LEDGER_TOPIC])
    tps = [TopicPartition(LEDGER_TOPIC, int(p["partition"])) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        keys: Counter[str] = Counter()
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                keys.update(r.key.decode() for r in records if r.key)
        return keys, sum(end.values())
    finally:
        await consumer.stop()


async def test_compaction_keeps_one_outcome_per_command_and_duplicates_still_find_it(
    kafka_env: dict[str, str], stack: Stack
) -> None:
    bootstrap = kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
    ids = [f"compact-{uuid.uuid4().hex[:10]}" for _ in range(COMMANDS)]
    keys = [f"call.connect:{command_id}" for command_id in ids]
    facts = await FactReader(bootstrap, [CALL_CONNECT_RESULT]).start()
    try:
        for command_id in ids:
            await publish(bootstrap, CALL_CONNECT, connect(command_id), key=command_id)
        firsts = await facts.wait_for(
            CALL_CONNECT_RESULT, lambda f: f.value["command_id"] in ids, count=COMMANDS
        )
        # New ledger writes roll segments; the cleaner then compacts the older ones.
        fillers, deadline = 0, time.monotonic() + 90
        left, written = await ledger_keys(bootstrap)
        while not all(left[key] == 1 for key in keys):
            assert time.monotonic() < deadline, f"the ledger was not compacted: {left}"
            fillers += 1
            filler = f"filler-{uuid.uuid4().hex[:10]}"
            await publish(bootstrap, CALL_CONNECT, connect(filler), key=filler)
            await facts.wait_for(CALL_CONNECT_RESULT, answers(filler))
            left, written = await ledger_keys(bootstrap)
        print(
            f"\nledger: {written} records written, {sum(left.values())} left after "
            f"compaction ({fillers} filler commands written meanwhile)"
        )
        # Each command wrote an intent and an outcome: compaction removed records.
        assert sum(left.values()) < written

        # A new executor reads the compacted ledger; duplicates are answered from it.
        assert stack.executor.stop() == 0
        env = executor_env(kafka_env, stack.sandbox, stack.ingress.url)
        env["EXECUTOR_GROUP_ID"] = f"executor-{uuid.uuid4().hex[:8]}"  # reads from the start
        with ServiceProcess("executor", env):
            for command_id in ids:
                await publish(bootstrap, CALL_CONNECT, connect(command_id), key=command_id)
            results = await facts.wait_for(
                CALL_CONNECT_RESULT, lambda f: f.value["command_id"] in ids, count=2 * COMMANDS
            )
    finally:
        await facts.stop()
    by_id: dict[str, list[dict[str, Any]]] = {}
    for fact in results:
        by_id.setdefault(fact.value["command_id"], []).append(fact.value)
    for first in firsts:
        again = by_id[first.value["command_id"]]
        assert {(r["outcome"], r["call_sid"]) for r in again} == {
            (first.value["outcome"], first.value["call_sid"])
        }
    posts = Counter(
        r.get("command_id") for r in stack.sandbox.control.requests() if r["method"] == "POST"
    )
    assert {command_id: posts[command_id] for command_id in ids} == dict.fromkeys(ids, 1)
