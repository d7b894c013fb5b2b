"""Lookups end to end: a producer publishes number.lookup through Kafka, the executor asks
the sandbox (Exotel) once and answers repeats from its cache; a call.connect with the DND
check refuses a promotional call to a DND number without ringing anyone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT, NUMBER_LOOKUP, NUMBER_LOOKUP_RESULT
from services.sandbox.testing import SandboxServer
from tests.integration.stack import Stack, publish, running_stack
from tests.support.facts import Fact, FactReader

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(kafka_env) as running:
        yield running


@pytest.fixture(scope="module")
async def facts(kafka_settings: Any, stack: Stack) -> AsyncIterator[FactReader]:
    reader = await FactReader(
        kafka_settings.bootstrap_servers, [NUMBER_LOOKUP_RESULT, CALL_CONNECT_RESULT]
    ).start()
    yield reader
    await reader.stop()


def for_command(command_id: str):
    return lambda fact: isinstance(fact.value, dict) and fact.value.get("command_id") == command_id


async def look_up(kafka_settings: Any, facts: FactReader, number: str) -> Fact:
    command = {"command_id": f"lookup-{uuid.uuid4().hex[:12]}", "number": number}
    await publish(kafka_settings.bootstrap_servers, NUMBER_LOOKUP, command, key=number)
    (result,) = await facts.wait_for(
        NUMBER_LOOKUP_RESULT, for_command(command["command_id"]), timeout=45
    )
    return result


def number_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sandbox.control.requests() if "/Numbers/" in r["path"]]


async def test_a_number_is_looked_up_once_and_then_served_from_the_cache(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    first = await look_up(kafka_settings, facts, "+919812347777")
    assert first.value["outcome"] == "accepted", first.value
    assert first.key == first.value["command_id"]
    assert first.headers["ce_type"] == "voicebus.number.lookup.result"
    number = first.value["number"]
    assert (number["number"], number["phone_number"], number["dnd"]) == (
        "+919812347777",
        "09812347777",
        "yes",
    )
    assert number["type"] == "Mobile"
    assert number["circle"]
    assert number["operator_name"]
    assert number["cached"] is False

    again = await look_up(kafka_settings, facts, "09812347777")
    assert again.value["outcome"] == "accepted"
    assert again.value["attempts"] == 0
    assert again.value["number"]["cached"] is True
    assert len(number_requests(stack.sandbox)) == 1, "the repeat cost no request"


async def test_a_number_exotel_refuses_is_rejected_naming_it(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    result = await look_up(kafka_settings, facts, "+14155550100")
    assert result.value["outcome"] == "rejected"
    error = result.value["error"]
    assert (error["code"], error["field"], error["http_status"]) == (
        "exotel_rejected",
        "number",
        400,
    )


async def connect(kafka_settings: Any, facts: FactReader, **fields: Any) -> Fact:
    command = {
        "command_id": f"dnd-{uuid.uuid4().hex[:12]}",
        "from": "+919876543210",
        "caller_id": "08047112345",
        **fields,
    }
    await publish(kafka_settings.bootstrap_servers, CALL_CONNECT, command, key=command["from"])
    (result,) = await facts.wait_for(
        CALL_CONNECT_RESULT, for_command(command["command_id"]), timeout=45
    )
    return result


async def test_a_promotional_call_to_a_dnd_number_rings_nobody(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    refused = await connect(kafka_settings, facts, to="+919811117777", dnd_check=True)
    assert refused.value["outcome"] == "rejected"
    assert refused.value["error"]["code"] == "dnd_blocked"
    assert refused.value["error"]["field"] == "to"
    assert refused.value["number"]["dnd"] == "yes"
    connects = [r for r in stack.sandbox.control.requests() if "connect" in r["path"]]
    assert connects == [], "Exotel was never asked to place the call"

    transactional = await connect(
        kafka_settings, facts, to="+919811117777", dnd_check=True, call_type="trans"
    )
    assert transactional.value["outcome"] == "accepted"
    allowed = await connect(kafka_settings, facts, to="+919811110000", dnd_check=True)
    assert allowed.value["outcome"] == "accepted"
    assert allowed.value["number"]["dnd"] == "no"
