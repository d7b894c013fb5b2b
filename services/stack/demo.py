"""``make demo``: publish a sample ``call.connect`` and print the facts it causes.

Runs against a stack started by ``make run`` (it reads ``.run/stack.env``) or any broker
named by ``KAFKA_BOOTSTRAP_SERVERS``.
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

from contracts.commands import CallConnect
from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT, CALL_STATUS

STACK_ENV = Path(".run/stack.env")


def bootstrap_servers() -> str:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    if STACK_ENV.exists():
        for line in STACK_ENV.read_text().splitlines():
            name, _, value = line.partition("=")
            if name == "KAFKA_BOOTSTRAP_SERVERS":
                return value
    raise SystemExit("no running stack: start one with `make run` (or set KAFKA_BOOTSTRAP_SERVERS)")


def _compact(value: Any) -> Any:
    """Drop nulls and empties (and the raw payload) so the facts read at a glance."""
    if isinstance(value, dict):
        return {
            k: _compact(v) for k, v in value.items() if k != "raw" and v not in (None, [], {})
        }
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def _show(title: str, value: dict[str, Any]) -> None:
    print(f"\n── {title}\n{json.dumps(_compact(value), indent=2)}", flush=True)


async def run(servers: str, wait_seconds: float) -> int:
    command = CallConnect.model_validate(
        {
            "command_id": f"demo-{uuid.uuid4().hex[:12]}",
            "from": os.environ.get("DEMO_FROM", "+919876543210"),
            "to": os.environ.get("DEMO_TO", "+919812345678"),
            "caller_id": os.environ.get("DEMO_CALLER_ID", "08047112345"),
            "custom_field": "demo-order-42",
        }
    )
    consumer = AIOKafkaConsumer(
        CALL_CONNECT_RESULT,
        CALL_STATUS,
        bootstrap_servers=servers,
        group_id=f"voicebus-demo-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await consumer.start()
    await producer.start()
    try:
        payload = command.model_dump_json(by_alias=True, exclude_none=True).encode()
        await producer.send_and_wait(CALL_CONNECT, payload, key=command.from_.encode())
        _show(f"published {CALL_CONNECT}", json.loads(payload))
        call_sid: str | None = None
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for records in batches.values() for r in records):
                value = json.loads(record.value)
                ours = value.get("command_id") == command.command_id
                if record.topic == CALL_CONNECT_RESULT and ours:
                    call_sid = value.get("call_sid")
                    _show(f"{CALL_CONNECT_RESULT} ({value['outcome']})", value)
                    if value["outcome"] != "accepted":
                        return 1
                elif record.topic == CALL_STATUS and (
                    value.get("command_id") == command.command_id
                    or (call_sid and value.get("call_sid") == call_sid)
                ):
                    _show(f"{CALL_STATUS} ({value['event_type']}: {value['status']})", value)
                    if value["event_type"] == "terminal":
                        return 0
        print(f"\nno terminal call.status within {wait_seconds:.0f}s", file=sys.stderr)
        return 1
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> int:
    return asyncio.run(run(bootstrap_servers(), float(os.environ.get("DEMO_TIMEOUT", "60"))))


if __name__ == "__main__":
    sys.exit(main())
