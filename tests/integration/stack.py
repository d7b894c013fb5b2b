"""A running voicebus for integration tests: sandbox, ingress and executor as processes."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
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


#: A second account on the same sandbox whose LWB requests are JSON (the LWB document's
#: samples); the env's ``default`` account sends forms.
JSON_LWB_ACCOUNT = "lwb-json"


def accounts_file(sandbox: SandboxServer) -> str:
    """An EXOTEL_ACCOUNTS_FILE naming :data:`JSON_LWB_ACCOUNT` (the sandbox's account)."""
    path = Path(tempfile.mkdtemp(prefix="voicebus-accounts-")) / "accounts.toml"
    path.write_text(
        f"""[accounts.{JSON_LWB_ACCOUNT}]
account_sid = "{sandbox.account_sid}"
api_key = "{sandbox.api_key}"
api_token = "{sandbox.api_token}"
base_url = "{sandbox.base_url}"
ccm_base_url = "{sandbox.base_url}"
lwb_request_encoding = "json"
""",
        encoding="utf-8",
    )
    return str(path)


@contextmanager
def running_stack(
    kafka_env: Mapping[str, str],
    *,
    executor_extra: Mapping[str, str] | None = None,
    **sandbox_env: str,
) -> Iterator[Stack]:
    with ExitStack() as stack:
        sandbox = stack.enter_context(
            SandboxServer(
                env={"SANDBOX_RING_SECONDS": "0.1", "SANDBOX_TALK_SECONDS": "0.2", **sandbox_env}
            )
        )
        ingress = stack.enter_context(ServiceProcess("ingress", ingress_env(kafka_env)))
        env = {
            **executor_env(kafka_env, sandbox, ingress.url),
            "EXOTEL_ACCOUNTS_FILE": accounts_file(sandbox),
            **(executor_extra or {}),
        }
        executor = stack.enter_context(ServiceProcess("executor", env))
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
