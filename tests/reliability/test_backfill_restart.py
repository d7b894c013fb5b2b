"""kill -9 the executor in the middle of a backfill: delivered again, the backfill resumes
after its last checkpointed page, says it restarted, and every call the filter matches is
on call.details, always with the same details_id: exactly once where the broker has
transactions (each page commits with its checkpoint; read committed), else at most twice
(the page in flight)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contracts.topics import CALL_DETAILS, CALL_LOOKUP, CALL_LOOKUP_RESULT
from services.sandbox.testing import SandboxServer
from tests.integration.stack import executor_env, ingress_env, publish
from tests.support.broker import SuiteBroker
from tests.support.facts import FactReader, wait_until
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

CALLS = 12
PAGE_SIZE = 2


def place_finished_calls(sandbox: SandboxServer, agent: str) -> list[str]:
    """Calls straight at the sandbox (no executor needed), waited for until they ended."""
    sids = []
    with httpx.Client(base_url=sandbox.base_url, auth=sandbox.auth, timeout=10) as exotel:
        for n in range(CALLS):
            answer = exotel.post(
                f"/v1/Accounts/{sandbox.account_sid}/Calls/connect.json",
                data={"From": agent, "To": f"+9198120{n:03d}4321", "CallerId": "08047112345"},
            )
            answer.raise_for_status()
            sids.append(answer.json()["Call"]["Sid"])
    for sid in sids:
        sandbox.control.wait_for_call(sid)
    return sids


async def test_a_backfill_killed_mid_way_resumes_and_says_it_restarted(
    broker: SuiteBroker, kafka_env: dict[str, str], kafka_settings: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    agent = f"+91987{uuid.uuid4().int % 10**5:05d}"
    with (
        SandboxServer(ring_seconds=0.02, talk_seconds=0.05) as sandbox,
        ServiceProcess("ingress", ingress_env(kafka_env)) as ingress,
    ):
        sids = place_finished_calls(sandbox, agent)
        sandbox.control.set_latency(0.4)  # each page takes a while: room to kill mid-way
        env = {
            **executor_env(kafka_env, sandbox, ingress.url),
            "EXECUTOR_GROUP_ID": f"backfill-{run}",
            "EXECUTOR_BACKFILL_PAGE_SIZE": str(PAGE_SIZE),
            "EXECUTOR_CALL_DETAILS_ENABLED": "false",
            "EXECUTOR_CALL_WATCH_ENABLED": "false",
        }
        reader = await FactReader(
            kafka_settings.bootstrap_servers, [CALL_DETAILS, CALL_LOOKUP_RESULT]
        ).start()
        command_id = f"backfill-{run}"

        def ours(fact: Any) -> bool:
            return isinstance(fact.value, dict) and fact.value.get("lookup_id") == command_id

        try:
            executor = ServiceProcess("executor", env).start()
            since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
            await publish(
                kafka_settings.bootstrap_servers,
                CALL_LOOKUP,
                {"command_id": command_id, "filter": {"since": since, "from": [agent]}},
                key=command_id,
            )
            await wait_until(
                lambda: len(reader.matching(CALL_DETAILS, ours)) >= 4,
                timeout=60,
                what="the backfill's first pages",
            )
            executor.kill()
            before_restart = len(reader.matching(CALL_DETAILS, ours))
            executor = ServiceProcess("executor", env).start()
            (result,) = await reader.wait_for(
                CALL_LOOKUP_RESULT,
                lambda f: isinstance(f.value, dict) and f.value.get("command_id") == command_id,
                timeout=120,
            )
            executor.stop()
        finally:
            await reader.stop()

        assert before_restart < CALLS, "killed before the backfill was done"
        assert result.value["outcome"] == "accepted", result.value
        summary = result.value["lookup"]
        assert summary["restarted"] is True
        assert summary["calls"] == CALLS
        assert summary["pages"] == CALLS // PAGE_SIZE
        facts = reader.matching(CALL_DETAILS, ours)
        assert sorted({f.value["call_sid"] for f in facts}) == sorted(sids)
        per_call = Counter(f.value["call_sid"] for f in facts)
        if broker.transactions:
            assert max(per_call.values()) == 1, f"a call published twice: {per_call}"
        assert max(per_call.values()) <= 2
        twice = [sid for sid, n in per_call.items() if n == 2]
        assert len(twice) <= PAGE_SIZE, f"more than the page in flight again: {twice}"
        ids = {
            sid: {f.value["details_id"] for f in facts if f.value["call_sid"] == sid}
            for sid in sids
        }
        assert all(len(found) == 1 for found in ids.values()), "one details_id per call"
        print(f"\nbackfill restart: {before_restart} facts before the kill, {len(facts)} in all")
