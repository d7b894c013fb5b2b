"""The supervisor story on an inbound call, through Kafka: a caller rings an ExoPhone (the
sandbox's call flow), its Passthru reaches the ingress and becomes a call.status flow
fact; a supervisor listens (the agent leg picked by the inbound rule: origin
outbound-dial), barges, and the agent's leg is hung up; the call's end is on call.status,
by the flow's last Passthru and by the call watch polling the call's details (a call first
seen by Passthru is watched like a placed one).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from contracts.topics import (
    CALL_STATUS,
    LEG_HANGUP,
    LEG_HANGUP_RESULT,
    LWB_ACTION,
    LWB_ACTION_RESULT,
)
from services.common.callback_signature import CallbackSigner
from services.executor.mapping.callbacks import CallbackTarget
from services.sandbox.testing import SandboxControl
from tests.integration.stack import (
    CALLBACK_TOKEN,
    SIGNING_SECRET,
    Stack,
    publish,
    running_stack,
)
from tests.support.facts import Fact, FactReader, for_command, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CALLER = "+919812340001"
EXOPHONE = "08047112345"
AGENT = "+919876543210"
SUPERVISOR = "+919800000007"
WATCH_AFTER_SECONDS = 3.0

JsonDict = dict[str, Any]


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[Stack]:
    watch = {
        "EXECUTOR_CALL_WATCH_AFTER_SECONDS": str(WATCH_AFTER_SECONDS),
        "EXECUTOR_CALL_WATCH_SWEEP_SECONDS": "0.5",
        "EXECUTOR_CALL_WATCH_GROUP_ID": f"call-watch-{uuid.uuid4().hex[:8]}",
    }
    with running_stack(kafka_env, executor_extra=watch) as running:
        yield running


@pytest.fixture(scope="module")
async def facts(kafka_settings: Any, stack: Stack) -> AsyncIterator[FactReader]:
    reader = await FactReader(
        kafka_settings.bootstrap_servers, [LWB_ACTION_RESULT, LEG_HANGUP_RESULT, CALL_STATUS]
    ).start()
    yield reader
    await reader.stop()


@pytest.fixture(scope="module")
async def control(stack: Stack) -> AsyncIterator[SandboxControl]:
    control = stack.sandbox.control
    yield control
    await control.aclose()


def passthru_url(stack: Stack, account: str = "default") -> str:
    """What ``voicebus passthru-url`` prints for this stack's ingress."""
    target = CallbackTarget(stack.ingress.url, CALLBACK_TOKEN, CallbackSigner(SIGNING_SECRET))
    return target.passthru_url(account)


def of_call(call_sid: str, **fields: Any) -> Callable[[Fact], bool]:
    def match(fact: Fact) -> bool:
        value = fact.value
        return (
            isinstance(value, dict)
            and value.get("call_sid") == call_sid
            and all(value.get(k) == v for k, v in fields.items())
        )

    return match


async def command(bootstrap: str, topic: str, call_sid: str, **fields: Any) -> str:
    command_id = f"{topic.split('.', maxsplit=1)[0]}-{uuid.uuid4().hex[:12]}"
    await publish(
        bootstrap, topic, {"command_id": command_id, "call_sid": call_sid, **fields}, key=call_sid
    )
    return command_id


async def result(facts: FactReader, topic: str, command_id: str) -> JsonDict:
    (fact,) = await facts.wait_for(topic, for_command(command_id), timeout=45)
    value: JsonDict = fact.value
    assert value["outcome"] == "accepted", value
    return value


async def test_a_supervisor_listens_barges_and_the_agent_leaves_an_inbound_call(
    kafka_settings: Any, stack: Stack, control: SandboxControl, facts: FactReader
) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    view = await control.inbound_async(
        **{
            "from": CALLER,
            "exophone": EXOPHONE,
            "agent": AGENT,
            "passthru_url": passthru_url(stack),
            "digits": "2",
            "record": True,
        }
    )
    call_sid = view["sid"]

    # 1. The flow's Passthru: the first voicebus hears of the call.
    (first,) = await facts.wait_for(CALL_STATUS, of_call(call_sid, event_type="flow"), timeout=30)
    flow = first.value
    assert first.key == call_sid
    assert first.headers["ce_type"] == "voicebus.call.status.flow"
    assert (flow["api"], flow["direction"], flow["call_type"]) == (
        "passthru",
        "inbound",
        "call-attempt",
    )
    assert (flow["from"], flow["to"], flow["digits"], flow["account"]) == (
        CALLER,
        EXOPHONE,
        "2",
        "default",
    )

    # 2. Listen, with no target: the agent is the leg the flow dialled out (outbound-dial).
    live = await control.wait_for_call_async(call_sid, lambda c: c["phase"] == "connected")
    legs = {leg["role"]: leg for leg in live["legs"]}
    assert (legs["customer"]["origin"], legs["agent"]["origin"]) == ("inbound", "outbound-dial")
    listen_id = await command(
        bootstrap, LWB_ACTION, call_sid, action="listen", supervisor=SUPERVISOR
    )
    listened = await result(facts, LWB_ACTION_RESULT, listen_id)
    monitor_sid = listened["leg_sid"]
    monitor = next(
        leg for leg in (await control.call_async(call_sid))["legs"] if leg["sid"] == monitor_sid
    )
    assert monitor["target_leg_sid"] == legs["agent"]["sid"], "the inbound rule's agent leg"

    # 3. Barge.
    await control.wait_for_call_async(
        call_sid,
        lambda c: any(leg["sid"] == monitor_sid and leg["status"] == "in-progress"
                      for leg in c["legs"]),
        timeout=15,
    )  # fmt: skip
    barge_id = await command(
        bootstrap,
        LWB_ACTION,
        call_sid,
        action="barge",
        supervisor=SUPERVISOR,
        monitor_leg_sid=monitor_sid,
    )
    barged = await result(facts, LWB_ACTION_RESULT, barge_id)
    assert barged["leg_sid"] == monitor_sid

    # 4. The agent's leg is hung up: the Connect applet ends, the flow goes on.
    hangup_id = await command(bootstrap, LEG_HANGUP, call_sid, leg="agent")
    hung = await result(facts, LEG_HANGUP_RESULT, hangup_id)
    assert hung["leg_sid"] == legs["agent"]["sid"]

    # 5. The end, on call.status: the monitor leg's terminal, the flow's last Passthru...
    (monitor_end,) = await facts.wait_for(
        CALL_STATUS, of_call(call_sid, leg_sid=monitor_sid), timeout=30
    )
    assert (monitor_end.value["api"], monitor_end.value["origin"]) == ("lwb", "monitor")
    (last,) = await facts.wait_for(
        CALL_STATUS, of_call(call_sid, event_type="flow", call_type="completed"), timeout=30
    )
    assert last.value["dial_whom_number"] == AGENT
    assert last.value["status"] == "completed"
    assert last.value["recording_url"].endswith(f"/{call_sid}.mp3")

    # ... and the call's own terminal, from the call watch polling its details.
    (terminal,) = await facts.wait_for(
        CALL_STATUS, of_call(call_sid, event_type="terminal", leg_sid=None), timeout=60
    )
    end = terminal.value
    assert terminal.key == call_sid
    assert (end["source"], end["api"], end["status"], end["direction"]) == (
        "poll",
        "v1",
        "completed",
        "inbound",
    )
    assert end["account"] == "default"
    ended = await control.call_async(call_sid)
    assert (ended["ended"], ended["end_cause"]) == (True, "hangup-agent")
    keys = {f.key for f in facts.matching(CALL_STATUS, of_call(call_sid))}
    assert keys == {call_sid}, "every fact of the call under its sid"


async def test_a_call_of_a_flow_the_account_does_not_know_is_dropped_by_the_watch(
    stack: Stack, control: SandboxControl, facts: FactReader
) -> None:
    """A Passthru naming a sid the account's call details do not know: polled in v1 call
    details (404), then dropped from the watch (its ``unknown`` outcome) instead of being
    polled for hours. (Facts of other tests' Passthrus in the same Kafka are dropped too.)"""
    sid = uuid.uuid4().hex
    async with httpx.AsyncClient(timeout=10) as http:
        url = f"{passthru_url(stack)}&CallSid={sid}&CallType=call-attempt&Direction=incoming"
        assert (await http.get(url)).status_code == 200
    await facts.wait_for(CALL_STATUS, of_call(sid, event_type="flow"), timeout=30)

    def dropped() -> bool:
        lines = stack.executor.output.splitlines()
        return any("call_watch.unknown_call" in line and sid in line for line in lines)

    await wait_until(dropped, timeout=30, what="the call watch to drop the unknown call")
    polls = [r for r in await control.requests_async() if sid in r["path"]]
    assert [(r["method"], r["status"]) for r in polls] == [("GET", 404)]
    assert polls[0]["path"].endswith(f"/Calls/{sid}.json"), "v1 call details"
    assert facts.matching(CALL_STATUS, of_call(sid, event_type="terminal")) == []
