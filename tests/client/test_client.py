"""``VoicebusClient`` against a real broker and a running voicebus."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from contracts import CallConnect, CommandResult, LegHangup
from services.client import ResultTimeout, VoicebusClient
from services.common.settings import KafkaSettings
from tests.integration.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def connect(**fields: Any) -> CallConnect:
    return CallConnect.model_validate(
        {
            "command_id": f"client-{uuid.uuid4().hex[:12]}",
            "from": "+919876543210",
            "to": "+919812345678",
            "caller_id": "08047112345",
            **fields,
        }
    )


async def test_send_returns_the_accepted_result(client: VoicebusClient) -> None:
    command = connect(api="v3", custom_field="order-42")
    result = await client.send(command, timeout=45)
    assert isinstance(result, CommandResult)
    assert result.command_id == command.command_id
    assert result.command_type == "call.connect"
    assert result.outcome == "accepted"
    assert result.call_sid
    assert result.api == "v3"
    assert result.error is None


async def test_send_returns_a_rejection_as_a_result(client: VoicebusClient) -> None:
    result = await client.send(connect(api="v3", **{"from": "+919876549999"}), timeout=45)
    assert result.outcome == "rejected"
    assert result.error is not None
    assert result.error.exotel_code == "10706"


async def test_concurrent_sends_each_get_their_own_result(client: VoicebusClient) -> None:
    commands = [connect() for _ in range(5)]
    results = await asyncio.gather(*(client.send(c, timeout=45) for c in commands))
    assert [r.command_id for r in results] == [c.command_id for c in commands]
    assert {r.outcome for r in results} == {"accepted"}
    assert len({r.call_sid for r in results}) == 5


async def test_sending_the_same_command_again_finds_its_result(
    kafka_settings: KafkaSettings, client: VoicebusClient
) -> None:
    command = connect()
    first = await client.send(command, timeout=45)
    # A new client (e.g. after a restart) looks back far enough to find the earlier result.
    async with VoicebusClient(kafka_settings, lookback=timedelta(minutes=5)) as again:
        second = await again.send(command, timeout=45)
    assert second.command_id == first.command_id
    assert second.call_sid == first.call_sid


async def test_statuses_follow_the_call_to_its_terminal_event(client: VoicebusClient) -> None:
    command = connect()
    result = await client.send(command, timeout=45)

    async def terminal() -> Any:
        async for event in client.statuses(call_sid=result.call_sid, event_type="terminal"):
            return event
        return None

    event = await asyncio.wait_for(terminal(), timeout=45)
    assert event.command_id == command.command_id
    assert event.status == "completed"


async def test_results_iterates_by_command_id(client: VoicebusClient) -> None:
    command = LegHangup(command_id=f"client-{uuid.uuid4().hex[:8]}", call_sid="nope", leg="all")
    published = await client.publish(command)
    assert published.topic == "leg.hangup"
    assert published.key == "nope"

    async def first() -> CommandResult | None:
        async for result in client.results(command_id=command.command_id):
            return result
        return None

    result = await asyncio.wait_for(first(), timeout=45)
    assert result is not None
    assert result.command_type == "leg.hangup"
    assert result.outcome == "rejected"


async def test_no_result_in_time_raises_result_timeout(
    client: VoicebusClient, stack: Stack
) -> None:
    stack.sandbox.control.add_fault(match="connect", method="POST", delay_seconds=3, count=1)
    command = connect()
    try:
        with pytest.raises(ResultTimeout) as caught:
            await client.send(command, timeout=0.5)
        assert caught.value.command_id == command.command_id
        # The command still runs: its result arrives later.
        late = await client.send(command, timeout=45)
        assert late.outcome == "accepted"
    finally:
        stack.sandbox.control.clear_faults()
