"""call.connect end to end: producer -> Kafka -> executor -> sandbox (Exotel) -> result fact,
and the sandbox's status callbacks -> ingress -> call.status facts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT, CALL_STATUS, dlq
from tests.integration.stack import Stack, publish, running_stack
from tests.support.facts import Fact, FactReader, for_command

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(kafka_env) as running:
        yield running


@pytest.fixture(scope="module")
async def facts(kafka_settings: Any, stack: Stack) -> AsyncIterator[FactReader]:
    reader = await FactReader(
        kafka_settings.bootstrap_servers,
        [CALL_CONNECT_RESULT, CALL_STATUS, dlq(CALL_CONNECT)],
    ).start()
    yield reader
    await reader.stop()


def connect_command(**fields: Any) -> dict[str, Any]:
    return {
        "command_id": f"it-{uuid.uuid4().hex[:12]}",
        "from": "+919876543210",
        "to": "+919812345678",
        "caller_id": "08047112345",
        **fields,
    }


async def send(kafka_settings: Any, command: dict[str, Any], **kwargs: Any) -> None:
    await publish(
        kafka_settings.bootstrap_servers, CALL_CONNECT, command, key=command.get("from"), **kwargs
    )


async def result_of(facts: FactReader, command_id: str) -> Fact:
    (result,) = await facts.wait_for(CALL_CONNECT_RESULT, for_command(command_id), timeout=45)
    return result


@pytest.mark.parametrize("api", ["v1", "v3"])
async def test_call_is_accepted_and_its_answered_and_terminal_status_arrive(
    kafka_settings: Any, stack: Stack, facts: FactReader, api: str
) -> None:
    command = connect_command(api=api, custom_field="order-42")
    await send(
        kafka_settings,
        command,
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )

    result = await result_of(facts, command["command_id"])
    assert result.value["outcome"] == "accepted"
    assert result.value["api"] == api
    assert result.value["attempts"] == 1
    call_sid = result.value["call_sid"]
    assert call_sid
    assert result.key == call_sid
    assert result.headers["ce_specversion"] == "1.0"
    assert result.headers["ce_type"] == "voicebus.call.connect.result"
    assert result.headers["traceparent"].startswith("00-0af7651916cd43dd")

    def ours(fact: Fact) -> bool:
        return isinstance(fact.value, dict) and fact.value.get("call_sid") == call_sid

    answered = await facts.wait_for(
        CALL_STATUS, lambda f: ours(f) and f.value["event_type"] == "answered", count=2, timeout=30
    )
    (terminal,) = await facts.wait_for(
        CALL_STATUS, lambda f: ours(f) and f.value["event_type"] == "terminal", timeout=30
    )
    for fact in (*answered, terminal):
        assert fact.key == call_sid
        assert fact.value["command_id"] == command["command_id"]
        assert fact.value["api"] == api
        assert fact.value["source"] == "callback"
    assert terminal.value["status"] == "completed"
    assert terminal.value["ended_at"].endswith("+05:30")
    answered_ids = {f.value["event_id"] for f in answered}
    assert terminal.value["event_id"] not in answered_ids
    if api == "v1":
        # v1 answered callbacks differ per leg (Legs[i][Status]); v3 ones carry no leg
        # detail, so two identical ones within a second rightly share one stable id.
        assert len(answered_ids) == 2


async def test_busy_agent_is_rejected_with_exotel_code(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    command = connect_command(api="v3", **{"from": "+919876549999"})
    await send(kafka_settings, command)

    result = await result_of(facts, command["command_id"])
    assert result.value["outcome"] == "rejected"
    assert result.value["attempts"] == 1
    error = result.value["error"]
    assert error["http_status"] == 409
    assert error["exotel_code"] == "10706"
    assert error["retryable"] is False
    assert result.key == command["command_id"], "no call sid: keyed by command_id"


async def test_two_server_errors_then_success_is_accepted_after_three_attempts(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    stack.sandbox.control.add_fault(match="connect", method="POST", status=503, count=2)
    try:
        command = connect_command()
        await send(kafka_settings, command)
        result = await result_of(facts, command["command_id"])
    finally:
        stack.sandbox.control.clear_faults()
    assert result.value["outcome"] == "accepted"
    assert result.value["attempts"] == 3
    assert result.value["error"] is None


async def test_server_errors_beyond_the_budget_fail_the_command(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    stack.sandbox.control.add_fault(match="connect", method="POST", status=503, count=10)
    try:
        command = connect_command()
        await send(kafka_settings, command)
        result = await result_of(facts, command["command_id"])
    finally:
        stack.sandbox.control.clear_faults()
    assert result.value["outcome"] == "failed"
    assert result.value["attempts"] == 4
    assert result.value["error"]["code"] == "exotel_unavailable"
    assert result.value["error"]["http_status"] == 503
    assert result.value["error"]["retryable"] is True


async def test_unreadable_command_goes_to_the_dlq_with_the_reason(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    marker = uuid.uuid4().hex
    raw = f"not json at all {marker}".encode()
    await publish(kafka_settings.bootstrap_servers, CALL_CONNECT, raw, key=f"k-{marker}")

    (dead,) = await facts.wait_for(dlq(CALL_CONNECT), lambda f: f.raw == raw, timeout=30)
    assert dead.key == f"k-{marker}"
    assert "not JSON" in dead.headers["error"]
    assert dead.headers["origin_topic"] == CALL_CONNECT


async def test_invalid_command_is_rejected_naming_the_field(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    command = connect_command(recording_channels="quad")
    await send(kafka_settings, command)

    result = await result_of(facts, command["command_id"])
    assert result.value["outcome"] == "rejected"
    assert result.value["attempts"] == 0
    assert result.value["error"]["code"] == "invalid_command"
    assert result.value["error"]["field"] == "recording_channels"
    assert "recording_channels" in result.value["error"]["message"]
    requests = stack.sandbox.control.requests()
    assert all(r.get("command_id") != command["command_id"] for r in requests)


async def test_unknown_account_is_rejected_without_calling_exotel(
    kafka_settings: Any, stack: Stack, facts: FactReader
) -> None:
    command = connect_command(account="nobody")
    await send(kafka_settings, command)

    result = await result_of(facts, command["command_id"])
    assert result.value["outcome"] == "rejected"
    assert result.value["error"]["code"] == "unknown_account"
    assert result.value["error"]["field"] == "account"


def test_wrong_callback_token_gets_401(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.ingress.url}/exotel/callbacks/not-the-token-at-all",
        json={"CallSid": "abc", "Status": "completed"},
        timeout=5,
    )
    assert response.status_code == 401


def test_secrets_never_reach_the_service_logs(stack: Stack) -> None:
    output = stack.executor.output + stack.ingress.output
    assert stack.sandbox.api_token not in output
    assert "test-callback-token-0123456789" not in output
