"""Never a stalled partition: a burst of garbage interleaved with valid commands, all on one
key (so one partition, one queue), through the real executor. Every valid command gets its
result, every unreadable message its DLQ entry, in one pass."""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT, dlq
from tests.integration.stack import CALLBACK_TOKEN, SIGNING_SECRET, Stack, running_stack
from tests.support.facts import FactReader, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(180)]

VALID_COMMANDS = 20
KEY = b"+919876543210"


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(kafka_env) as running:
        yield running


def garbage(rng: random.Random, marker: str) -> list[bytes]:
    """Unreadable messages of every kind the decoder names (each unique via ``marker``)."""
    return [
        b"\xff\xfe" + marker.encode() + bytes(rng.randrange(256) for _ in range(20)),
        f"{{not json {marker}".encode(),
        json.dumps([marker, 1, 2]).encode(),
        json.dumps({"marker": marker, "from": "+91"}).encode(),  # no command_id
        json.dumps({"command_id": "", "marker": marker}).encode(),
        json.dumps({"command_id": "x" * 129, "marker": marker}).encode(),
        json.dumps(marker).encode(),
        json.dumps({"command_id": 7, "marker": marker}).encode(),
    ]


def undecodable_by_json_loads(marker: str) -> list[bytes]:
    """JSON-looking bytes that make ``json.loads`` raise something other than a plain
    JSONDecodeError (a ValueError beyond int's digit limit, a RecursionError)."""
    return [
        f'{{"command_id": "{marker}", "n": {"9" * 5000}}}'.encode(),
        f'{{"command_id": "{marker}", "x": '.encode() + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ]


def invalid(marker: str) -> dict[str, Any]:
    """Readable, with a command_id, but invalid: a ``rejected`` result, not the DLQ."""
    return {"command_id": marker, "from": "+919876543210", "to": 12, "caller_id": None}


def valid(command_id: str) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "from": "+919876543210",
        "to": "+919812345678",
        "caller_id": "08047112345",
    }


async def test_garbage_never_stalls_the_partition(kafka_env: dict[str, str], stack: Stack) -> None:
    bootstrap = kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
    rng = random.Random(20260101)
    run = uuid.uuid4().hex[:8]
    valid_ids = [f"burst-{run}-{n}" for n in range(VALID_COMMANDS)]
    invalid_ids = [f"burst-{run}-invalid-{n}" for n in range(5)]
    unreadable: list[bytes] = []
    messages: list[bytes] = []
    for n, command_id in enumerate(valid_ids):
        junk = garbage(rng, f"junk-{run}-{n}")
        rng.shuffle(junk)
        unreadable += junk[:3]
        messages += [*junk[:3], json.dumps(valid(command_id)).encode()]
        if n < len(invalid_ids):
            messages.append(json.dumps(invalid(invalid_ids[n])).encode())

    reader = await FactReader(bootstrap, [CALL_CONNECT_RESULT, dlq(CALL_CONNECT)]).start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for value in messages:
            await producer.send(CALL_CONNECT, value, key=KEY)
        await producer.flush()

        wanted = set(valid_ids) | set(invalid_ids)
        results = await reader.wait_for(
            CALL_CONNECT_RESULT,
            lambda f: isinstance(f.value, dict) and f.value.get("command_id") in wanted,
            count=len(wanted),
            timeout=90,
        )
        by_id = {f.value["command_id"]: f.value for f in results}
        assert set(by_id) == wanted
        for command_id in invalid_ids:
            assert by_id[command_id]["outcome"] == "rejected"
            assert by_id[command_id]["error"]["code"]
        assert all(by_id[c]["outcome"] in ("accepted", "rejected", "failed") for c in valid_ids)

        expected = set(unreadable)

        def arrived() -> set[bytes]:
            return {f.raw for f in reader.matching(dlq(CALL_CONNECT)) if f.raw in expected}

        with contextlib.suppress(AssertionError):
            await wait_until(lambda: arrived() == expected, timeout=30, what="dead letters")
        missing = sorted(value[:60] for value in expected - arrived())
        assert missing == []
        letters = reader.matching(dlq(CALL_CONNECT), lambda f: f.raw in expected)
        assert all(f.headers.get("error") for f in letters)

        # No secret in any fact, DLQ header or log line of the services.
        secrets = [stack.sandbox.api_token, stack.sandbox.api_key, CALLBACK_TOKEN, SIGNING_SECRET]
        for fact in reader.seen:
            exposed = json.dumps([fact.value, fact.headers])
            assert not [s for s in secrets if s in exposed], fact
        for output in (stack.executor.output, stack.ingress.output):
            assert not [s for s in secrets if s in output]
    finally:
        await producer.stop()
        await reader.stop()


async def test_messages_json_loads_chokes_on_still_reach_the_dlq(
    kafka_env: dict[str, str], stack: Stack
) -> None:
    bootstrap = kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
    run = uuid.uuid4().hex[:8]
    poison = undecodable_by_json_loads(f"choke-{run}")
    follower = f"after-choke-{run}"
    reader = await FactReader(bootstrap, [CALL_CONNECT_RESULT, dlq(CALL_CONNECT)]).start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in [*poison, json.dumps(valid(follower)).encode()]:
            await producer.send_and_wait(CALL_CONNECT, value, key=KEY)
        await reader.wait_for(
            CALL_CONNECT_RESULT,
            lambda f: isinstance(f.value, dict) and f.value.get("command_id") == follower,
            timeout=30,
        )
        letters = await reader.wait_for(
            dlq(CALL_CONNECT), lambda f: f.raw in poison, count=len(poison), timeout=5
        )
        assert {f.raw for f in letters} == set(poison)
    finally:
        await producer.stop()
        await reader.stop()
