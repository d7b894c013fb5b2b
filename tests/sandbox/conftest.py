"""One real sandbox subprocess and one callback receiver for the sandbox tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.sandbox.testing import CallbackReceiver, SandboxControl, SandboxServer
from tests.sandbox.helpers import Paths

FAST: dict[str, Any] = {
    "queue_seconds": 0.02,
    "ring_seconds": 0.1,
    "talk_seconds": 0.25,
    "long_call_seconds": 30,
    "callback_timeout_seconds": 2,
    "callback_retry_delay_seconds": 0.05,
}


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(**FAST) as server:
        yield server


@pytest.fixture(scope="session")
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as rx:
        yield rx


@pytest.fixture
def control(sandbox: SandboxServer, receiver: CallbackReceiver) -> Iterator[SandboxControl]:
    sandbox.control.reset()
    receiver.clear()
    receiver.respond_with()
    yield sandbox.control
    sandbox.control.reset()


@pytest.fixture
def exotel(sandbox: SandboxServer, control: SandboxControl) -> Iterator[httpx.Client]:
    """An httpx client speaking to the sandbox with the right credentials."""
    with httpx.Client(base_url=sandbox.base_url, auth=sandbox.auth, timeout=10) as client:
        yield client


@pytest.fixture
def paths(sandbox: SandboxServer) -> Paths:
    return Paths(sandbox.account_sid)
