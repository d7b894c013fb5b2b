"""``VoicebusClient``'s lookups against a real broker and a running voicebus: a number's
metadata, one call's details and a backfill, each with the facts it published."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts import CallConnect
from services.client import ResultTimeout, VoicebusClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def finished_call(client: VoicebusClient, to: str) -> str:
    command = CallConnect.model_validate(
        {
            "command_id": f"client-{uuid.uuid4().hex[:12]}",
            "from": "+919876543210",
            "to": to,
            "caller_id": "08047112345",
        }
    )
    result = await client.send(command, timeout=45)
    assert result.call_sid
    async for event in client.statuses(call_sid=result.call_sid, event_type="terminal"):
        assert event.status == "completed"
        break
    return result.call_sid


async def test_lookup_number_returns_the_numbers_metadata(client: VoicebusClient) -> None:
    result = await client.lookup_number("+919812347778", timeout=45)
    assert result.outcome == "accepted"
    assert result.number is not None
    assert (result.number.dnd, result.number.type) == ("unavailable", "Mobile")


async def test_call_details_return_the_result_and_the_calls_details(
    client: VoicebusClient,
) -> None:
    sid = await finished_call(client, "+919812344321")
    answer = await client.call_details(sid, timeout=45)
    assert answer.result.outcome == "accepted"
    (details,) = answer.details
    assert (details.call_sid, details.source) == (sid, "lookup")
    assert details.lookup_id == answer.result.command_id
    assert details.price is not None


async def test_a_backfill_returns_every_call_once_oldest_first(client: VoicebusClient) -> None:
    numbers = [f"+9198{uuid.uuid4().int % 10**4:04d}4321" for _ in range(2)]
    sids = [await finished_call(client, number) for number in numbers]
    since = datetime.now(UTC) - timedelta(minutes=10)
    answer = await client.backfill({"since": since, "to": numbers}, timeout=60)
    assert answer.result.outcome == "accepted"
    assert answer.result.lookup is not None
    assert answer.result.lookup.calls == 2
    assert sorted(d.call_sid for d in answer.details) == sorted(sids)
    created = [d.created_at for d in answer.details]
    assert created == sorted(c for c in created if c is not None)


async def test_details_that_do_not_arrive_in_time_raise_result_timeout(
    client: VoicebusClient,
) -> None:
    with pytest.raises(ResultTimeout):
        await client.call_details("nosuchcall-but-slow", timeout=0.01)
