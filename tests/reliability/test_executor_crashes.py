"""kill -9 the executor repeatedly while 500 commands flow: every command gets a result,
and Exotel (the sandbox) sees at most one request per command_id."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import CALL_CONNECT_RESULT
from services.sandbox.testing import SandboxServer
from tests.integration.stack import ingress_env
from tests.support.crashes import crashing_executor_env, kill_repeatedly, publish_connects
from tests.support.facts import FactReader, wait_until
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

COMMANDS = 500
KILLS = 3


async def test_killing_the_executor_never_loses_a_command_nor_calls_twice(
    kafka_env: dict[str, str], kafka_settings: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    with (
        SandboxServer(
            ring_seconds=0.02, talk_seconds=0.05, voice_calls_per_minute=60000
        ) as sandbox,
        ServiceProcess("ingress", ingress_env(kafka_env)) as ingress,
    ):
        env = crashing_executor_env(kafka_env, sandbox, ingress.url, f"crash-{run}")
        reader = await FactReader(kafka_settings.bootstrap_servers, [CALL_CONNECT_RESULT]).start()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
        await producer.start()
        ids = [f"crash-{run}-{n:04d}" for n in range(COMMANDS)]

        async def publish_all() -> None:
            await publish_connects(producer, ids, pause_every=25)

        def ours(fact: Any) -> bool:
            return isinstance(fact.value, dict) and fact.value.get("command_id", "").startswith(
                f"crash-{run}-"
            )

        def answered() -> set[str]:
            return {f.value["command_id"] for f in reader.matching(CALL_CONNECT_RESULT, ours)}

        try:
            publishing = asyncio.create_task(publish_all())
            executor = await kill_repeatedly(
                env, lambda: len(answered()), kills=KILLS, every=40, total=COMMANDS
            )
            await publishing
            # Every command gets a result (a result may be published twice after a kill).
            await wait_until(
                lambda: answered() >= set(ids),
                timeout=120,
                what=f"a result for each of the {COMMANDS} commands",
            )
            executor.stop()
        finally:
            await producer.stop()
            await reader.stop()

        results = reader.matching(CALL_CONNECT_RESULT, ours)
        missing = set(ids) - {f.value["command_id"] for f in results}
        assert not missing, f"{len(missing)} commands never got a result"
        outcomes = {f.value["command_id"]: f.value for f in results}
        for command_id in ids:
            same = {f.value["outcome"] for f in results if f.value["command_id"] == command_id}
            assert len(same) == 1, f"{command_id}: contradictory results {same}"
        requests = Counter(
            r["command_id"]
            for r in sandbox.control.requests()
            if r.get("command_id", "")
            and r["command_id"].startswith(f"crash-{run}-")
            and r["method"] == "POST"
        )
        twice = {c: n for c, n in requests.items() if n > 1}
        assert not twice, f"sent to Exotel more than once: {twice}"
        by_outcome = Counter(v["outcome"] for v in outcomes.values())
        print(f"outcomes after {KILLS} kill -9: {dict(by_outcome)}")
        # Only commands killed between recording their intent and Exotel's answer can end
        # in doubt (failed, never resent): a few per kill at most.
        assert by_outcome["accepted"] >= COMMANDS - KILLS * 32
