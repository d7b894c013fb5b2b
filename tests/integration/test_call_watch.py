"""Missing-callback recovery end to end: the executor's call watch polls Exotel (the
sandbox) for accepted calls whose terminal callback never reached voicebus, and publishes
a ``call.status`` terminal fact with ``source="poll"``.

The executor's ``CALLBACK_PUBLIC_URL`` points at a :class:`CallbackReceiver`, not at the
ingress: the sandbox delivers every callback there (so it is not retried) and voicebus
never sees it, i.e. it is lost. For the call whose callbacks must arrive, the test forwards
them to the real ingress, exactly as received.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT, CALL_STATUS
from services.sandbox.testing import CallbackReceiver, ReceivedCallback, SandboxServer
from tests.integration.stack import executor_env, ingress_env, publish
from tests.support.facts import Fact, FactReader, wait_until
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AFTER_SECONDS = 2


@dataclass
class WatchStack:
    sandbox: SandboxServer
    ingress: ServiceProcess
    executor: ServiceProcess
    receiver: CallbackReceiver

    def details_requests(self, call_sid: str) -> list[dict[str, Any]]:
        """The call-details GETs the sandbox received for ``call_sid``."""
        response = httpx.get(
            f"{self.sandbox.base_url}/_sandbox/requests", params={"call_sid": call_sid}, timeout=5
        )
        response.raise_for_status()
        body = response.json()
        requests = body["requests"] if isinstance(body, dict) else body
        return [
            r
            for r in requests
            if r["method"] == "GET"
            and r.get("call_sid") == call_sid
            and "legs" not in r["path"].lower()
        ]

    def forward(self, callback: ReceivedCallback) -> None:
        """Deliver a received callback to the ingress as Exotel would have."""
        response = httpx.request(
            callback.method,
            f"{self.ingress.url}{callback.path}",
            params=callback.query,
            content=callback.body,
            headers={"content-type": callback.headers.get("content-type", "")},
            timeout=10,
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[WatchStack]:
    with (
        SandboxServer(
            env={"SANDBOX_RING_SECONDS": "0.1", "SANDBOX_TALK_SECONDS": "0.2"},
            rate_limits_enabled=False,
        ) as sandbox,
        CallbackReceiver() as receiver,
        ServiceProcess("ingress", ingress_env(kafka_env)) as ingress,
    ):
        env = {
            **executor_env(kafka_env, sandbox, receiver.base_url),
            "EXECUTOR_CALL_WATCH_AFTER_SECONDS": str(AFTER_SECONDS),
            "EXECUTOR_CALL_WATCH_SWEEP_SECONDS": "0.5",
            "EXECUTOR_CALL_WATCH_GROUP_ID": f"call-watch-{uuid.uuid4().hex[:8]}",
            # The watch also finds the calls other modules placed on this broker (same
            # sandbox account, no terminal it heard of) and polls them, which this
            # module's sandbox answers "not found": at Exotel's 300 GETs a minute those
            # polls queued this module's for longer than its waits. Not what is tested.
            "EXOTEL_GET_PER_MINUTE": "60000",
            "EXECUTOR_CALL_WATCH_CONCURRENCY": "16",
        }
        with ServiceProcess("executor", env) as executor:
            yield WatchStack(sandbox, ingress, executor, receiver)


@pytest.fixture(scope="module")
async def facts(kafka_settings: Any, stack: WatchStack) -> AsyncIterator[FactReader]:
    reader = await FactReader(
        kafka_settings.bootstrap_servers, [CALL_CONNECT_RESULT, CALL_STATUS]
    ).start()
    yield reader
    await reader.stop()


async def place_call(kafka_settings: Any, facts: FactReader, **fields: Any) -> tuple[str, str]:
    """Publish a call.connect; return (command_id, call_sid) once accepted."""
    command = {
        "command_id": f"watch-{uuid.uuid4().hex[:12]}",
        "from": "+919876543210",
        "to": "+919812345678",
        "caller_id": "08047112345",
        **fields,
    }
    await publish(kafka_settings.bootstrap_servers, CALL_CONNECT, command, key=command["from"])
    (result,) = await facts.wait_for(
        CALL_CONNECT_RESULT,
        lambda f: isinstance(f.value, dict) and f.value.get("command_id") == command["command_id"],
        timeout=30,
    )
    assert result.value["outcome"] == "accepted", result.value
    return command["command_id"], result.value["call_sid"]


def terminal_of(call_sid: str, source: str):
    def match(fact: Fact) -> bool:
        value = fact.value
        return (
            isinstance(value, dict)
            and value.get("call_sid") == call_sid
            and value.get("event_type") == "terminal"
            and value.get("source") == source
        )

    return match


async def test_lost_terminal_callbacks_are_recovered_by_polling(
    kafka_settings: Any, stack: WatchStack, facts: FactReader
) -> None:
    v1_id, v1_sid = await place_call(kafka_settings, facts, api="v1", custom_field="order-7")
    v3_id, v3_sid = await place_call(kafka_settings, facts, api="v3", to="+919812341111")

    for command_id, sid, api, status in (
        (v1_id, v1_sid, "v1", "completed"),
        (v3_id, v3_sid, "v3", "no-answer"),  # busy customer: v3 "to_leg_unanswered"
    ):
        # The executor's state directory is a temporary one: the watch first restores the
        # whole suite's history (cold), so its poll can come well after the first due time.
        (fact,) = await facts.wait_for(CALL_STATUS, terminal_of(sid, "poll"), timeout=60)
        event = fact.value
        assert fact.key == sid
        assert event["status"] == status
        assert event["exotel_status"]
        assert event["api"] == api
        assert event["command_id"] == command_id
        assert event["account"] == "default"
        assert event["ended_at"].endswith("+05:30")
        assert fact.headers["ce_source"] == "voicebus/executor-call-watch"
        assert fact.headers["ce_type"] == "voicebus.call.status.terminal"
        assert fact.headers["ce_id"] == event["event_id"]
        assert stack.details_requests(sid), "recovered through the call details API"
        # the callbacks were sent (to a place voicebus never hears from)
        assert any(cb.query.get("command_id") == command_id for cb in stack.receiver.received)

    # v1 call details carry no CustomField (the terminal callback does): null in a poll.
    v1_legs = facts.matching(CALL_STATUS, terminal_of(v1_sid, "poll"))[0].value["legs"]
    assert [leg["status"] for leg in v1_legs] == ["completed", "completed"]


async def test_a_call_still_active_is_polled_again_until_it_ends(
    kafka_settings: Any, stack: WatchStack, facts: FactReader
) -> None:
    _, sid = await place_call(kafka_settings, facts, api="v1", to="+919812345555")  # long call
    await wait_until(lambda: len(stack.details_requests(sid)) >= 1, timeout=15, what="first poll")
    assert not facts.matching(CALL_STATUS, terminal_of(sid, "poll"))
    httpx.post(f"{stack.sandbox.base_url}/_sandbox/calls/{sid}/end", timeout=5).raise_for_status()

    (fact,) = await facts.wait_for(CALL_STATUS, terminal_of(sid, "poll"), timeout=20)
    assert fact.value["status"] == "completed"
    assert len(stack.details_requests(sid)) >= 2


async def test_a_call_whose_terminal_callback_arrived_is_not_polled(
    kafka_settings: Any, stack: WatchStack, facts: FactReader
) -> None:
    command_id, sid = await place_call(kafka_settings, facts, api="v1")

    def ours(cb: ReceivedCallback) -> bool:
        return cb.query.get("command_id") == command_id

    def is_terminal(cb: ReceivedCallback) -> bool:
        return ours(cb) and (cb.form or {}).get("EventType") == "terminal"

    await stack.receiver.wait_for_async(is_terminal, timeout=15)
    for callback in [cb for cb in stack.receiver.received if ours(cb)]:
        stack.forward(callback)
    await facts.wait_for(CALL_STATUS, terminal_of(sid, "callback"), timeout=15)

    # A call accepted later and lost: once it is recovered, the first call has been
    # overdue for longer, so every sweep that could have polled it has run.
    _, later = await place_call(kafka_settings, facts, api="v1")
    await facts.wait_for(CALL_STATUS, terminal_of(later, "poll"), timeout=20)

    assert stack.details_requests(sid) == []
    assert not facts.matching(CALL_STATUS, terminal_of(sid, "poll"))


async def test_a_restarted_executor_rebuilds_the_watch_from_kafka(
    kafka_settings: Any, stack: WatchStack, facts: FactReader
) -> None:
    """Kafka alone is enough: a new process without its predecessor's local store finds
    the call still missing its terminal by re-reading call.connect.result and
    call.status, and recovers it."""
    _, sid = await place_call(kafka_settings, facts, api="v3", to="+919812345555")  # long
    await wait_until(lambda: len(stack.details_requests(sid)) >= 1, timeout=15, what="a poll")
    assert stack.executor.stop() == 0
    httpx.post(f"{stack.sandbox.base_url}/_sandbox/calls/{sid}/end", timeout=5).raise_for_status()
    assert not facts.matching(CALL_STATUS, terminal_of(sid, "poll"))

    stack.executor.start()
    (fact,) = await facts.wait_for(CALL_STATUS, terminal_of(sid, "poll"), timeout=30)
    assert fact.value["status"] == "completed"
    assert fact.value["api"] == "v3"
