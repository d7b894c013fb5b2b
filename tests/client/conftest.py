"""A running voicebus (sandbox, ingress, executor) per test module, and a client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from services.client import VoicebusClient
from services.common.settings import KafkaSettings
from tests.integration.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(kafka_env) as running:
        yield running


@pytest.fixture
async def client(kafka_settings: KafkaSettings, stack: Stack) -> AsyncIterator[VoicebusClient]:
    async with VoicebusClient(kafka_settings, client_id="client-test") as voicebus:
        yield voicebus
