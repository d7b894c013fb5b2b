"""A running voicebus for integration tests: sandbox, ingress and executor as processes."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from services.sandbox.testing import SandboxServer
from tests.support.services import ServiceProcess

CALLBACK_TOKEN = "test-callback-token-0123456789"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef0123"


@dataclass
class Stack:
    sandbox: SandboxServer
    ingress: ServiceProcess
    executor: ServiceProcess


def executor_env(
    kafka_env: Mapping[str, str], sandbox: SandboxServer, ingress_url: str
) -> dict[str, str]:
    return {
        **kafka_env,
        "EXOTEL_ACCOUNT_SID": sandbox.account_sid,
        "EXOTEL_API_KEY": sandbox.api_key,
        "EXOTEL_API_TOKEN": sandbox.api_token,
        "EXOTEL_BASE_URL": sandbox.base_url,
        "EXOTEL_CCM_BASE_URL": sandbox.base_url,
        "CALLBACK_PUBLIC_URL": ingress_url,
        "CALLBACK_TOKEN": CALLBACK_TOKEN,
        "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
        "EXECUTOR_GROUP_ID": f"executor-{uuid.uuid4().hex[:8]}",
        "EXECUTOR_RETRY_INITIAL_SECONDS": "0.05",
        "EXECUTOR_RETRY_MAX_BACKOFF_SECONDS": "0.5",
        "EXECUTOR_RETRY_MAX_ATTEMPTS": "4",
        "EXECUTOR_RETRY_DEADLINE_SECONDS": "20",
        "EXECUTOR_SHUTDOWN_GRACE_SECONDS": "5",
    }


def ingress_env(kafka_env: Mapping[str, str]) -> dict[str, str]:
    return {
        **kafka_env,
        "CALLBACK_TOKEN": CALLBACK_TOKEN,
        "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
        # A fresh spool per ingress: never replay another test's callbacks.
        "INGRESS_SPOOL_DIR": tempfile.mkdtemp(prefix="voicebus-spool-"),
    }


@contextmanager
def running_stack(kafka_env: Mapping[str, str], **sandbox_env: str) -> Iterator[Stack]:
    with ExitStack() as stack:
        sandbox = stack.enter_context(
            SandboxServer(
                env={"SANDBOX_RING_SECONDS": "0.1", "SANDBOX_TALK_SECONDS": "0.2", **sandbox_env}
            )
        )
        ingress = stack.enter_context(ServiceProcess("ingress", ingress_env(kafka_env)))
        executor = stack.enter_context(
            ServiceProcess("executor", executor_env(kafka_env, sandbox, ingress.url))
        )
        yield Stack(sandbox, ingress, executor)


async def publish(
    bootstrap: str,
    topic: str,
    value: bytes | Mapping[str, Any],
    *,
    key: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        payload = value if isinstance(value, bytes) else json.dumps(value).encode()
        await producer.send_and_wait(
            topic,
            payload,
            key=key.encode() if key else None,
            headers=[(k, v.encode()) for k, v in (headers or {}).items()],
        )
    finally:
        await producer.stop()
