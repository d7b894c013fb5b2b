"""Call details end to end (real broker, sandbox, ingress and executor processes):
call.lookup of one call and of a filter (a backfill), and every finished call's details
published once on call.details a few seconds after its terminal status, also across an
executor restart."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.topics import (
    CALL_CONNECT,
    CALL_CONNECT_RESULT,
    CALL_DETAILS,
    CALL_LOOKUP,
    CALL_LOOKUP_RESULT,
    CALL_STATUS,
)
from services.sandbox.testing import SandboxServer
from tests.integration.stack import executor_env, ingress_env, publish
from tests.support.facts import Fact, FactReader
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

AFTER_SECONDS = 2


@dataclass
class DetailsStack:
    sandbox: SandboxServer
    ingress: ServiceProcess
    executor: ServiceProcess


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[DetailsStack]:
    with (
        SandboxServer(
            env={"SANDBOX_RING_SECONDS": "0.1", "SANDBOX_TALK_SECONDS": "0.3"}
        ) as sandbox,
        ServiceProcess("ingress", ingress_env(kafka_env)) as ingress,
    ):
        env = {
            **executor_env(kafka_env, sandbox, ingress.url),
            "EXECUTOR_CALL_DETAILS_AFTER_SECONDS": str(AFTER_SECONDS),
            "EXECUTOR_CALL_WATCH_SWEEP_SECONDS": "0.5",
            "EXECUTOR_CALL_WATCH_GROUP_ID": f"call-watch-{uuid.uuid4().hex[:8]}",
        }
        with ServiceProcess("executor", env) as executor:
            yield DetailsStack(sandbox, ingress, executor)


@pytest.fixture(scope="module")
async def facts(kafka_settings: Any, stack: DetailsStack) -> AsyncIterator[FactReader]:
    reader = await FactReader(
        kafka_settings.bootstrap_servers,
        [CALL_CONNECT_RESULT, CALL_STATUS, CALL_LOOKUP_RESULT, CALL_DETAILS],
    ).start()
    yield reader
    await reader.stop()


def of_command(command_id: str):
    return lambda fact: isinstance(fact.value, dict) and fact.value.get("command_id") == command_id


def details_of(call_sid: str, source: str):
    def match(fact: Fact) -> bool:
        value = fact.value
        return (
            isinstance(value, dict)
            and value.get("call_sid") == call_sid
            and value.get("source") == source
        )

    return match


def customer() -> str:
    """A customer number no other test calls, ending in digits the sandbox answers."""
    return f"+9198{uuid.uuid4().int % 10**4:04d}4321"


async def finished_call(
    kafka_settings: Any, stack: DetailsStack, facts: FactReader, **fields: Any
) -> tuple[str, str]:
    """Place a call through call.connect and wait for its terminal status; (command, sid)."""
    command = {
        "command_id": f"dt-{uuid.uuid4().hex[:12]}",
        "from": "+919876543210",
        "to": customer(),
        "caller_id": "08047112345",
        **fields,
    }
    await publish(kafka_settings.bootstrap_servers, CALL_CONNECT, command, key=command["from"])
    (result,) = await facts.wait_for(
        CALL_CONNECT_RESULT, of_command(command["command_id"]), timeout=45
    )
    assert result.value["outcome"] == "accepted", result.value
    sid = result.value["call_sid"]
    await facts.wait_for(
        CALL_STATUS,
        lambda f: (
            isinstance(f.value, dict)
            and f.value.get("call_sid") == sid
            and f.value.get("event_type") == "terminal"
        ),
        timeout=30,
    )
    return command["command_id"], sid


async def look_up(kafka_settings: Any, facts: FactReader, key: str, **fields: Any) -> Fact:
    command = {"command_id": f"lk-{uuid.uuid4().hex[:12]}", **fields}
    await publish(kafka_settings.bootstrap_servers, CALL_LOOKUP, command, key=key)
    (result,) = await facts.wait_for(
        CALL_LOOKUP_RESULT, of_command(command["command_id"]), timeout=60
    )
    return result


async def test_one_calls_lookup_publishes_its_details_with_price_and_every_leg(
    kafka_settings: Any, stack: DetailsStack, facts: FactReader
) -> None:
    _, sid = await finished_call(kafka_settings, stack, facts, record=True)
    result = await look_up(kafka_settings, facts, sid, call_sid=sid)

    assert result.value["outcome"] == "accepted", result.value
    assert result.value["lookup"] == {"calls": 1, "pages": 0, "restarted": False}
    assert result.key == sid
    lookup_id = result.value["command_id"]
    (fact,) = facts.matching(CALL_DETAILS, details_of(sid, "lookup"))
    details = fact.value
    assert fact.key == sid
    assert fact.headers["ce_type"] == "voicebus.call.details"
    assert fact.headers["ce_id"] == details["details_id"]
    assert (details["lookup_id"], details["status"], details["finished"]) == (
        lookup_id,
        "completed",
        True,
    )
    assert float(details["price"]) > 0
    assert details["answered_by"] == "human"
    assert details["duration"] >= details["conversation_duration"] >= 1
    assert details["recordings"]
    assert details["legs_source"] == "legs_api"
    assert [leg["origin"] for leg in details["legs"]] == ["outbound", "outbound-dial"]


async def test_a_v3_calls_lookup_reads_v3_details_v1s_price_and_the_v3_legs(
    kafka_settings: Any, stack: DetailsStack, facts: FactReader
) -> None:
    _, sid = await finished_call(kafka_settings, stack, facts, api="v3")
    result = await look_up(kafka_settings, facts, sid, call_sid=sid, api="v3")
    assert result.value["outcome"] == "accepted", result.value
    (fact,) = facts.matching(CALL_DETAILS, details_of(sid, "lookup"))
    details = fact.value
    assert details["api"] == "v3"
    assert details["price"] is not None
    assert details["legs_source"] == "v3_legs"
    assert {leg["origin"] for leg in details["legs"]} == {"from", "to"}


async def test_an_unknown_call_is_rejected_not_found(
    kafka_settings: Any, stack: DetailsStack, facts: FactReader
) -> None:
    result = await look_up(kafka_settings, facts, "nosuchcall", call_sid="nosuchcall")
    assert result.value["outcome"] == "rejected"
    assert result.value["error"]["code"] == "exotel_not_found"


async def test_a_backfill_publishes_every_call_the_filter_matches(
    kafka_settings: Any, stack: DetailsStack, facts: FactReader
) -> None:
    numbers = [customer() for _ in range(3)]
    sids = [(await finished_call(kafka_settings, stack, facts, to=number))[1] for number in numbers]
    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    command_key = f"bf-{uuid.uuid4().hex[:8]}"
    result = await look_up(
        kafka_settings,
        facts,
        command_key,
        filter={"since": since, "to": numbers, "status": ["completed"]},
    )
    assert result.value["outcome"] == "accepted", result.value
    assert result.value["lookup"]["calls"] == 3
    assert result.value["lookup"]["restarted"] is False
    lookup_id = result.value["command_id"]
    backfilled = facts.matching(
        CALL_DETAILS,
        lambda f: (
            isinstance(f.value, dict)
            and f.value.get("source") == "backfill"
            and f.value.get("lookup_id") == lookup_id
        ),
    )
    assert sorted(f.value["call_sid"] for f in backfilled) == sorted(sids)
    assert all(f.value["price"] is not None for f in backfilled)


async def test_a_filter_exotel_would_refuse_is_rejected_before_any_request(
    kafka_settings: Any, stack: DetailsStack, facts: FactReader
) -> None:
    before = len(stack.sandbox.control.requests())
    old = (datetime.now(UTC) - timedelta(days=200)).isoformat()
    result = await look_up(kafka_settings, facts, "old", filter={"since": old})
    assert result.value["outcome"] == "rejected"
    assert result.value["error"]["field"] == "filter.since"
    bulk = [
        r for r in stack.sandbox.control.requests()[before:] if r["path"].endswith("Calls.json")
    ]
    assert bulk == []


async def test_every_finished_call_is_finalised_once_also_across_a_restart(
    kafka_settings: Any, stack: DetailsStack, facts: FactReader
) -> None:
    command_id, first = await finished_call(kafka_settings, stack, facts)
    (fact,) = await facts.wait_for(CALL_DETAILS, details_of(first, "poll"), timeout=30)
    details = fact.value
    assert (details["command_id"], details["status"], details["finished"]) == (
        command_id,
        "completed",
        True,
    )
    assert details["price"] is not None
    assert fact.headers["ce_source"] == "voicebus/executor-call-watch"

    stack.executor.stop()
    stack.executor.start()
    _, second = await finished_call(kafka_settings, stack, facts)
    await facts.wait_for(CALL_DETAILS, details_of(second, "poll"), timeout=30)
    assert len(facts.matching(CALL_DETAILS, details_of(first, "poll"))) == 1, (
        "the restarted executor read the first call's details back and did not fetch them again"
    )
