"""The sandbox answers 30% of requests with 5xx, timeouts or 429: every command still ends
accepted, or failed within its retry budget, and no call is placed twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT
from services.sandbox.testing import SandboxServer
from tests.integration.stack import executor_env, ingress_env
from tests.support.facts import FactReader
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(240)]

COMMANDS = 60
MAX_ATTEMPTS = 6


async def test_a_faulty_exotel_never_loses_a_command_nor_places_a_call_twice(
    kafka_env: dict[str, str], kafka_settings: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    with (
        SandboxServer(
            ring_seconds=0.02,
            talk_seconds=0.05,
            voice_calls_per_minute=60000,
            get_per_minute=60000,
        ) as sandbox,
        ServiceProcess("ingress", ingress_env(kafka_env)) as ingress,
    ):
        sandbox.control.chaos(
            0.3, kinds=["5xx", "timeout", "rate_limit"], timeout_seconds=1.5, seed=7
        )
        env = {
            **executor_env(kafka_env, sandbox, ingress.url),
            "EXECUTOR_GROUP_ID": f"chaos-{run}",
            "EXECUTOR_RETRY_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "EXECUTOR_RETRY_INITIAL_SECONDS": "0.05",
            "EXECUTOR_RETRY_MAX_BACKOFF_SECONDS": "0.3",
            "EXECUTOR_RETRY_DEADLINE_SECONDS": "20",
            "EXECUTOR_RECONCILE_WINDOW_SECONDS": "6",
            "EXECUTOR_RECONCILE_POLL_SECONDS": "0.5",
            # The client gives up before the sandbox's slow answer: a lost answer.
            "EXOTEL_TIMEOUT_SECONDS": "1.0",
            "EXOTEL_VOICE_CALLS_PER_MINUTE": "60000",
            "EXOTEL_GET_PER_MINUTE": "60000",
        }
        reader = await FactReader(kafka_settings.bootstrap_servers, [CALL_CONNECT_RESULT]).start()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
        await producer.start()
        ids = {f"chaos-{run}-{n:03d}": f"+9197{n:08d}" for n in range(COMMANDS)}
        try:
            with ServiceProcess("executor", env):
                for command_id, agent in ids.items():
                    command = {
                        "command_id": command_id,
                        "from": agent,
                        "to": "+919812345678",
                        "caller_id": "08047112345",
                        "status_events": ["terminal"],
                    }
                    await producer.send(
                        CALL_CONNECT, json.dumps(command).encode(), key=agent.encode()
                    )
                await producer.flush()
                await reader.wait_for(
                    CALL_CONNECT_RESULT,
                    lambda f: f.value.get("command_id") in ids,
                    count=COMMANDS,
                    timeout=180,
                )
        finally:
            await producer.stop()
            await reader.stop()
        sandbox.control.clear_faults()
        await asyncio.sleep(0)
        results = {
            f.value["command_id"]: f.value
            for f in reader.matching(
                CALL_CONNECT_RESULT, lambda f: f.value.get("command_id") in ids
            )
        }
        placed = Counter(
            call["from"] for call in sandbox.control.calls() if call["from"] in ids.values()
        )

    assert set(results) == set(ids), "every command has a result"
    outcomes = Counter(r["outcome"] for r in results.values())
    assert set(outcomes) <= {"accepted", "failed"}, outcomes
    for result in results.values():
        if result["outcome"] == "failed":
            assert result["error"]["code"] in {
                "exotel_unavailable",
                "exotel_timeout",
                "rate_limited",
                "in_doubt",
            }, result
            assert result["attempts"] <= MAX_ATTEMPTS * 2, "within its budget"
    twice = {number: n for number, n in placed.items() if n > 1}
    assert not twice, f"calls placed more than once: {twice}"
    accepted = [r for r in results.values() if r["outcome"] == "accepted"]
    assert all(r["call_sid"] for r in accepted)
    assert len(accepted) >= COMMANDS * 0.8, outcomes
    print(f"outcomes with 30% faults: {dict(outcomes)}")
