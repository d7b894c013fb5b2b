"""What the kill -9 tests share: an executor that may be killed at any time, and a stream
of call.connect commands published while it is."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence

from aiokafka import AIOKafkaProducer

from contracts.topics import CALL_CONNECT
from services.sandbox.testing import SandboxServer
from tests.integration.stack import executor_env
from tests.support.services import ServiceProcess


def crashing_executor_env(
    kafka_env: Mapping[str, str], sandbox: SandboxServer, ingress_url: str, group: str
) -> dict[str, str]:
    """Short reconcile waits (killed commands are in doubt) and Exotel's rate limits
    lifted: these tests are about crashes, not throttling."""
    return {
        **executor_env(kafka_env, sandbox, ingress_url),
        "EXECUTOR_GROUP_ID": group,
        "EXECUTOR_MAX_IN_FLIGHT": "32",
        "EXECUTOR_RECONCILE_WINDOW_SECONDS": "3",
        "EXECUTOR_RECONCILE_POLL_SECONDS": "0.5",
        "EXOTEL_VOICE_CALLS_PER_MINUTE": "60000",
    }


async def publish_connects(
    producer: AIOKafkaProducer, ids: Sequence[str], *, pause_every: int
) -> None:
    """One call.connect per id (agents' numbers as keys, 50 agents), pausing 50 ms every
    ``pause_every`` commands so the stream outlasts the kills."""
    for n, command_id in enumerate(ids):
        value = {
            "command_id": command_id,
            "from": f"+9198{n:08d}",
            "to": "+919812345678",
            "caller_id": "08047112345",
            "status_events": ["terminal"],
        }
        key = f"agent-{n % 50}".encode()
        await producer.send(CALL_CONNECT, json.dumps(value).encode(), key=key)
        if n % pause_every == 0:
            await asyncio.sleep(0.05)
    await producer.flush()


async def kill_repeatedly(
    env: Mapping[str, str],
    answered: Callable[[], int],
    *,
    kills: int,
    every: int,
    total: int,
) -> ServiceProcess:
    """Start an executor, and ``kills`` times kill -9 it and start another, each time
    once ``every`` more commands are answered (or all ``total`` are, or 20 s passed):
    mid-stream, whatever it was doing. Returns the executor left running."""
    executor = ServiceProcess("executor", dict(env)).start()
    for _ in range(kills):
        target = min(answered() + every, total)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and answered() < target:
            await asyncio.sleep(0.05)
        executor.kill()
        executor = ServiceProcess("executor", dict(env)).start()
    return executor
