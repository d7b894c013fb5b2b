"""``make demo``: publish sample commands and print the facts they cause.

1. A call: ``call.connect`` -> its result -> ``answered`` and ``terminal`` ``call.status``.
2. The supervisor flow of Exotel's LWB document: an agent-customer call, a supervisor
   listens (no target given: the executor picks the agent leg), barges in, then leaves
   (``leg.hangup leg=monitor``); finally the call is hung up (``leg=all``).

Runs against a stack started by ``make run`` (it reads ``.run/stack.env``) or any broker
named by ``KAFKA_BOOTSTRAP_SERVERS``. ``DEMO=call`` or ``DEMO=supervisor`` runs one part.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.topics import CALL_STATUS, COMMAND_TOPICS, RESULT_TOPIC
from services.cli.config import ConfigError
from services.cli.config import kafka_settings as cli_kafka_settings
from services.common.kafka_security import security_options
from services.common.settings import KafkaSettings

STACK_ENV = Path(".run/stack.env")
AGENT = os.environ.get("DEMO_FROM", "+919876543210")
CUSTOMER = os.environ.get("DEMO_TO", "+919812345678")
LONG_CALL_CUSTOMER = "+919812345555"  # the sandbox keeps numbers ending 5555 in progress
SUPERVISOR = "+919811122233"
CALLER_ID = os.environ.get("DEMO_CALLER_ID", "08047112345")


def kafka_settings() -> KafkaSettings:
    """``KAFKA_BOOTSTRAP_SERVERS`` (else ``.run/stack.env``) and the ``KAFKA_*`` security
    settings, as the CLI reads them."""
    try:
        return cli_kafka_settings(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), stack_env=STACK_ENV)
    except ConfigError as exc:
        raise SystemExit(f"demo: {exc}") from exc


def _compact(value: Any) -> Any:
    """Drop nulls and empties (and the raw payload) so the facts read at a glance."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if k != "raw" and v not in (None, [], {})}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def _show(title: str, value: dict[str, Any]) -> None:
    print(f"\n── {title}\n{json.dumps(_compact(value), indent=2)}", flush=True)


class Session:
    """Publishes commands and reads the facts, shared by both demos."""

    def __init__(self, settings: KafkaSettings, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        servers, security = settings.bootstrap_servers, security_options(settings)
        self.producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", **security)
        self.consumer = AIOKafkaConsumer(
            *RESULT_TOPIC.values(),
            CALL_STATUS,
            bootstrap_servers=servers,
            **security,
            group_id=f"voicebus-demo-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.pending: list[tuple[str, dict[str, Any]]] = []

    async def __aenter__(self) -> Session:
        await self.consumer.start()
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()
        await self.consumer.stop()

    async def send(self, topic: str, command: dict[str, Any], key: str) -> dict[str, Any]:
        """Publish ``command`` and wait for its result."""
        if topic not in COMMAND_TOPICS:
            raise ValueError(f"{topic} is not a command topic")
        await self.producer.send_and_wait(topic, json.dumps(command).encode(), key=key.encode())
        _show(f"published {topic}", command)
        result = await self.next_fact(
            lambda t, v: t == RESULT_TOPIC[topic] and v.get("command_id") == command["command_id"]
        )
        _show(f"{RESULT_TOPIC[topic]} ({result['outcome']})", result)
        return result

    async def next_fact(self, wanted: Any) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_seconds
        while time.monotonic() < deadline:
            for index, (topic, value) in enumerate(self.pending):
                if wanted(topic, value):
                    del self.pending[index]
                    return value
            batches = await self.consumer.getmany(timeout_ms=300)
            for record in (r for records in batches.values() for r in records):
                self.pending.append((record.topic, json.loads(record.value)))
        raise TimeoutError(f"no matching fact within {self.wait_seconds:.0f}s")

    async def status(self, call_sid: str, *, event_type: str, leg: bool = False) -> dict[str, Any]:
        fact = await self.next_fact(
            lambda t, v: (
                t == CALL_STATUS
                and v.get("call_sid") == call_sid
                and v.get("event_type") == event_type
                and (v.get("leg_sid") is not None) == leg
            )
        )
        what = f"{fact['event_type']}: {fact['status']}"
        if leg:
            what += f", leg {fact['leg_sid']} ({fact.get('last_action') or fact.get('origin')})"
        _show(f"{CALL_STATUS} ({what})", fact)
        return fact


def _id(prefix: str) -> str:
    return f"demo-{prefix}-{uuid.uuid4().hex[:8]}"


async def demo_call(session: Session) -> bool:
    print("\n=== 1. a call: call.connect -> result -> answered and terminal facts")
    result = await session.send(
        "call.connect",
        {
            "command_id": _id("call"),
            "from": AGENT,
            "to": CUSTOMER,
            "caller_id": CALLER_ID,
            "custom_field": "demo-order-42",
        },
        key=AGENT,
    )
    if result["outcome"] != "accepted":
        return False
    await session.status(result["call_sid"], event_type="answered")
    await session.status(result["call_sid"], event_type="terminal")
    return True


async def demo_supervisor(session: Session) -> bool:
    print("\n=== 2. supervisor: listen (agent leg picked), barge, leave; then hang up")
    placed = await session.send(
        "call.connect",
        {
            "command_id": _id("sup-call"),
            "from": AGENT,
            "to": LONG_CALL_CUSTOMER,
            "caller_id": CALLER_ID,
        },
        key=AGENT,
    )
    if placed["outcome"] != "accepted":
        return False
    call_sid = placed["call_sid"]
    await session.status(call_sid, event_type="answered")
    await session.status(call_sid, event_type="answered")
    listen = await session.send(
        "lwb.action",
        {
            "command_id": _id("listen"),
            "call_sid": call_sid,
            "action": "listen",
            "supervisor": SUPERVISOR,
            "custom_field": "coaching",
        },
        key=call_sid,
    )
    if listen["outcome"] != "accepted":
        return False
    await asyncio.sleep(1.0)  # the supervisor's phone rings and is answered (sandbox)
    barge = await session.send(
        "lwb.action",
        {
            "command_id": _id("barge"),
            "call_sid": call_sid,
            "action": "barge",
            "supervisor": SUPERVISOR,
            "monitor_leg_sid": listen["leg_sid"],
        },
        key=call_sid,
    )
    leave = await session.send(
        "leg.hangup",
        {"command_id": _id("leave"), "call_sid": call_sid, "leg": "monitor"},
        key=call_sid,
    )
    await session.status(call_sid, event_type="terminal", leg=True)
    end = await session.send(
        "leg.hangup", {"command_id": _id("end"), "call_sid": call_sid, "leg": "all"}, key=call_sid
    )
    await session.status(call_sid, event_type="terminal")
    return all(r["outcome"] == "accepted" for r in (barge, leave, end))


async def run(settings: KafkaSettings, wait_seconds: float, which: str) -> int:
    async with Session(settings, wait_seconds) as session:
        ok = True
        if which in ("all", "call"):
            ok = await demo_call(session) and ok
        if which in ("all", "supervisor"):
            ok = await demo_supervisor(session) and ok
    print("\ndemo finished" + ("" if ok else " with a command that was not accepted"))
    return 0 if ok else 1


def main() -> int:
    try:
        return asyncio.run(
            run(
                kafka_settings(),
                float(os.environ.get("DEMO_TIMEOUT", "60")),
                os.environ.get("DEMO", "all"),
            )
        )
    except TimeoutError as exc:
        print(f"\ndemo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
