"""Stop the broker under the ingress while callbacks arrive; start it again: nothing lost.

On Apache Kafka the broker comes back with its data intact: ``call.status`` then holds
every callback, in order per call (counting the first copy of each ``event_id``: a replay
whose acknowledgement was lost can repeat one, under the same id): those published before
the outage, those spooled during it (replayed into the same topics) and those after. On the
embedded broker (memory only) the broker that comes back is empty: what reaches its
``call.status`` can only have come from the spool. Then the ingress itself is stopped
with a non-empty spool and started again: the spool is replayed at start.
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
from services.common.processes import free_port
from tests.ingress import samples
from tests.ingress.signing import SIGNING_SECRET, signed_query
from tests.support.broker import OwnApacheKafka, OwnTansu, own_broker
from tests.support.facts import FactReader, wait_until
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

TOKEN = "outage-token-" + uuid.uuid4().hex
CALLS = 6
EXOTEL_PATIENCE_SECONDS = 15.0  # Exotel's wait for a 200


@pytest.fixture
def kafka() -> Iterator[OwnApacheKafka | OwnTansu]:
    """A broker of this test's own (of the suite's kind) on a fixed port, not yet started."""
    with own_broker(free_port(), start=False) as broker:
        yield broker


def ingress_process(kafka: OwnApacheKafka | OwnTansu, spool: Path) -> ServiceProcess:
    return ServiceProcess(
        "ingress",
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAFKA_ENABLE_IDEMPOTENCE": str(kafka.supports_transactions).lower(),
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


async def test_callbacks_accepted_during_an_outage_reach_kafka_when_it_returns(
    kafka: OwnApacheKafka | OwnTansu, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    sids = [f"outage-{uuid.uuid4().hex[:12]}" for _ in range(CALLS)]
    kept = kafka.keeps_data  # Apache Kafka restarts with its data; Tansu starts empty
    kafka.start()
    ingress = ingress_process(kafka, spool).start(timeout=30)
    url = f"{ingress.url}/exotel/callbacks/{TOKEN}?{signed_query(command_id='outage')}"
    before = ["before-1", "before-2"]
    during = [f"during-{n}" for n in range(5)]
    try:
        async with httpx.AsyncClient(timeout=EXOTEL_PATIENCE_SECONDS) as http:
            await send_all(http, url, sids, before)
            assert readyz(ingress)["spool_depth"] == 0

            kafka.stop()
            elapsed = await send_all(http, url, sids, during)
            assert max(elapsed) < EXOTEL_PATIENCE_SECONDS / 2
            state = readyz(ingress)
            assert state["http_status"] == 200, state  # still accepting
            assert state["kafka"] == "unavailable"
            assert state["spool_depth"] >= CALLS * len(during)
            assert metric(ingress, "voicebus_ingress_spool_depth") == state["spool_depth"]
            assert metric(ingress, "voicebus_ingress_spooled_total") >= CALLS * len(during)

            kafka.start()
            await wait_until(
                lambda: readyz(ingress)["spool_depth"] == 0, timeout=30, what="spool drained"
            )
            await send_all(http, url, sids, ["after-1"])
            so_far = [*(before if kept else []), *during, "after-1"]
            steps = await steps_on(kafka.bootstrap_servers, sids, CALLS * len(so_far))
            for sid in sids:
                assert steps[sid] == so_far, (sid, steps[sid])
            assert metric(ingress, "voicebus_ingress_replayed_total") >= CALLS * len(during)

            # The ingress goes down with callbacks still in its spool.
            kafka.stop()
            await send_all(http, url, sids, ["spooled-at-stop"])
            assert readyz(ingress)["spool_depth"] >= CALLS
        assert ingress.stop() == 0
        assert list(spool.glob("*.jsonl")), "the spool kept its records across the stop"

        kafka.start()
        restarted = ingress_process(kafka, spool).start(timeout=30)
        try:
            expected = [*(so_far if kept else []), "spooled-at-stop"]
            steps = await steps_on(kafka.bootstrap_servers, sids, CALLS * len(expected))
            for sid in sids:
                assert steps[sid] == expected, (sid, steps[sid])
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
