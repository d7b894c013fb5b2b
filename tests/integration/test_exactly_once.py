"""A command_id is never sent to Exotel twice: a duplicate publish re-emits the result."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT
from tests.integration.stack import Stack, publish, running_stack
from tests.support.facts import FactReader

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(kafka_env) as running:
        yield running


@pytest.fixture(scope="module")
async def facts(kafka_settings: Any, stack: Stack) -> AsyncIterator[FactReader]:
    reader = await FactReader(kafka_settings.bootstrap_servers, [CALL_CONNECT_RESULT]).start()
    yield reader
    await reader.stop()


async def test_a_duplicate_publish_re_emits_the_result_without_a_second_call(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    command = {
        "command_id": f"dup-{uuid.uuid4().hex[:10]}",
        "from": "+919876543210",
        "to": "+919812345678",
        "caller_id": "08047112345",
        "status_events": ["terminal"],
    }
    for _ in range(2):
        await publish(kafka_settings.bootstrap_servers, CALL_CONNECT, command, key="agent-1")

    results = await facts.wait_for(
        CALL_CONNECT_RESULT,
        lambda f: f.value["command_id"] == command["command_id"],
        count=2,
        timeout=30,
    )
    first, second = (r.value for r in results)
    assert first["outcome"] == second["outcome"] == "accepted"
    assert first["call_sid"] == second["call_sid"]
    connects = [
        r
        for r in stack.sandbox.control.requests()
        if r.get("command_id") == command["command_id"] and r["method"] == "POST"
    ]
    assert len(connects) == 1


async def test_a_duplicate_of_a_rejected_command_is_rejected_again_the_same_way(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    command = {
        "command_id": f"dup-{uuid.uuid4().hex[:10]}",
        "from": "+919876549999",
        "to": "+919812345678",
        "caller_id": "08047112345",
        "api": "v3",
    }
    await publish(kafka_settings.bootstrap_servers, CALL_CONNECT, command, key="agent-2")
    await facts.wait_for(
        CALL_CONNECT_RESULT, lambda f: f.value["command_id"] == command["command_id"]
    )
    await publish(kafka_settings.bootstrap_servers, CALL_CONNECT, command, key="agent-2")
    results = await facts.wait_for(
        CALL_CONNECT_RESULT,
        lambda f: f.value["command_id"] == command["command_id"],
        count=2,
        timeout=30,
    )
    assert [r.value["error"]["exotel_code"] for r in results] == ["10706", "10706"]
    posts = [
        r
        for r in stack.sandbox.control.requests()
        if r.get("command_id") == command["command_id"] and r["method"] == "POST"
    ]
    assert len(posts) == 1


def test_readyz_tells_what_the_executor_restored_for_its_partitions(stack: Stack) -> None:
    """The state of the assigned partitions was restored before commands ran, and /readyz
    says so (while restoring it shows ``restoring`` with records read and left)."""
    ready = httpx.get(stack.executor.url + "/readyz", timeout=5).json()
    assert ready["restored_since_start"]["restores"] >= 1
    assert ready["last_restore"]["ledger_partitions"] == ready["state"]["partitions"]
    assert ready["state"]["partitions"], "the executor owns the command partitions"
