"""A three-broker Apache Kafka cluster under faults (replication factor 3,
``min.insync.replicas=2``, internal topics likewise), with voicebus running on it:

a. kill -9 the broker leading most command and result partitions while 500 call.connect
   flow: every command gets a result and exactly one Exotel call;
b. kill -9 a broker while callbacks are posted at a steady rate: every callback answered
   200 is on call.status afterwards;
c. two of three brokers down for 20 s: no acknowledged write is lost, /readyz says why,
   and the services recover by themselves when the brokers return.

Each prints its figures; they assert nothing lost and nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import ALL_TOPICS, CALL_CONNECT, CALL_CONNECT_RESULT, CALL_STATUS
from services.brokers.apache_kafka import ApacheKafka
from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings
from services.executor.state.records import LEDGER_TOPIC, LEDGER_TOPIC_CONFIG
from services.sandbox.testing import SandboxServer
from tests.ingress import samples
from tests.ingress.signing import SIGNING_SECRET, signed_query
from tests.integration.stack import CALLBACK_TOKEN, executor_env, ingress_env
from tests.support.broker import SuiteBroker, own_broker_kind
from tests.support.facts import Fact, FactReader, wait_until
from tests.support.kafka_admin import leaders
from tests.support.services import ServiceProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

COMMANDS = 500
PARTITIONS = 6


@pytest.fixture(scope="module")
def cluster(broker: SuiteBroker) -> Iterator[ApacheKafka]:
    if broker.kind == "tansu" or own_broker_kind() != "apache-kafka":
        pytest.skip("needs Apache Kafka (three local brokers); this run is on Tansu")
    with ApacheKafka(nodes=3, heap="-Xms128m -Xmx384m") as kafka:
        yield kafka


@pytest.fixture(scope="module")
def cluster_env(cluster: ApacheKafka, kafka_env: dict[str, str]) -> dict[str, str]:
    env = {
        **kafka_env,
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "KAFKA_ENABLE_IDEMPOTENCE": "true",
        "KAFKA_REPLICATION_FACTOR": "3",
        "KAFKA_MIN_INSYNC_REPLICAS": "2",
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "KAFKA_REQUEST_TIMEOUT_MS": "10000",
        "KAFKA_HEALTH_PROBE_SECONDS": "1",
        "KAFKA_HEALTH_PROBE_TIMEOUT_SECONDS": "3",
    }
    settings = KafkaSettings(
        bootstrap_servers=cluster.bootstrap_servers,
        replication_factor=3,
        min_insync_replicas=2,
        topic_partitions=PARTITIONS,
    )
    asyncio.run(
        ensure_topics(
            settings, (*ALL_TOPICS, LEDGER_TOPIC), configs={LEDGER_TOPIC: LEDGER_TOPIC_CONFIG}
        )
    )
    return env


@pytest.fixture
def all_brokers_up(cluster: ApacheKafka) -> Iterator[ApacheKafka]:
    """Every node running before and after each test (a test restarts what it killed)."""
    yield cluster
    for node in cluster.nodes:
        if not node.running():
            cluster.start_node(node.node_id)


@pytest.fixture
async def producer(cluster_env: dict[str, str]) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=cluster_env["KAFKA_BOOTSTRAP_SERVERS"],
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10000,
    )
    await producer.start()
    yield producer
    await producer.stop()


def connect(command_id: str, n: int) -> bytes:
    return json.dumps(
        {
            "command_id": command_id,
            "from": f"+9198{n:08d}",
            "to": "+919812345678",
            "caller_id": "08047112345",
            "status_events": ["terminal"],
        }
    ).encode()


@dataclass
class Figures:
    """What a fault test prints: counts, duplicates, and how long recovery took."""

    name: str
    values: dict[str, object] = field(default_factory=dict)

    def __setitem__(self, key: str, value: object) -> None:
        self.values[key] = value

    def show(self) -> None:
        print(f"\n{self.name}: " + ", ".join(f"{k}={v}" for k, v in self.values.items()))


def posts_by_command(sandbox: SandboxServer, prefix: str) -> Counter[str]:
    return Counter(
        r["command_id"]
        for r in sandbox.control.requests()
        if r["method"] == "POST" and str(r.get("command_id", "")).startswith(prefix)
    )


async def test_killing_the_leading_broker_loses_no_command_and_calls_no_one_twice(
    all_brokers_up: ApacheKafka, cluster_env: dict[str, str], producer: AIOKafkaProducer
) -> None:
    cluster = all_brokers_up
    bootstrap = cluster.bootstrap_servers
    run = uuid.uuid4().hex[:8]
    ids = [f"leader-{run}-{n:04d}" for n in range(COMMANDS)]
    figures = Figures("kill -9 the leading broker")
    with (
        SandboxServer(
            ring_seconds=0.02, talk_seconds=0.05, voice_calls_per_minute=60000
        ) as sandbox,
        ServiceProcess("ingress", ingress_env(cluster_env)) as ingress,
    ):
        env = {
            **executor_env(cluster_env, sandbox, ingress.url),
            "EXECUTOR_MAX_IN_FLIGHT": "32",
            "EXOTEL_VOICE_CALLS_PER_MINUTE": "60000",
        }
        reader = await FactReader(bootstrap, [CALL_CONNECT_RESULT]).start()

        wanted = set(ids)

        def ours(fact: Fact) -> bool:
            return isinstance(fact.value, dict) and fact.value.get("command_id") in wanted

        def answered() -> set[str]:
            return {f.value["command_id"] for f in reader.matching(CALL_CONNECT_RESULT, ours)}

        async def publish_all() -> None:
            for n, command_id in enumerate(ids):
                await producer.send(CALL_CONNECT, connect(command_id, n), key=f"a{n % 50}".encode())
                if n % 20 == 0:
                    await asyncio.sleep(0.1)
            await producer.flush()

        try:
            with ServiceProcess("executor", env):
                publishing = asyncio.create_task(publish_all())
                await wait_until(lambda: len(answered()) >= 100, timeout=60, what="100 results")
                counts = await leaders(bootstrap, [CALL_CONNECT, CALL_CONNECT_RESULT])
                victim = counts.most_common(1)[0][0]
                done_at_kill = len(answered())
                cluster.kill_node(victim)
                killed = time.monotonic()
                await wait_until(
                    lambda: len(answered()) > done_at_kill, timeout=60, what="results again"
                )
                figures["results_resumed_after_s"] = round(time.monotonic() - killed, 1)
                await publishing
                await wait_until(
                    lambda: answered() >= set(ids),
                    timeout=180,
                    what=f"a result for each of the {COMMANDS} commands",
                )
                figures["all_answered_after_s"] = round(time.monotonic() - killed, 1)
        finally:
            await reader.stop()

        results = reader.matching(CALL_CONNECT_RESULT, ours)
        per_command = Counter(f.value["command_id"] for f in results)
        posts = posts_by_command(sandbox, f"leader-{run}-")
        figures["killed_broker"] = f"{victim} (led {counts[victim]} of {sum(counts.values())})"
        figures["commands"] = COMMANDS
        figures["calls_placed"] = sum(posts.values())
        figures["results"] = len(results)
        figures["duplicate_results"] = len(results) - len(per_command)
        figures["outcomes"] = dict(Counter(f.value["outcome"] for f in results))
        figures.show()
        assert set(per_command) == set(ids), "every command has a result"
        assert {c: n for c, n in posts.items() if n > 1} == {}, "nobody was called twice"
        for command_id in ids:
            outcomes = {f.value["outcome"] for f in results if f.value["command_id"] == command_id}
            assert len(outcomes) == 1, f"{command_id}: contradictory results {outcomes}"


async def test_killing_a_broker_under_callbacks_loses_none_answered_200(
    all_brokers_up: ApacheKafka, cluster_env: dict[str, str]
) -> None:
    cluster = all_brokers_up
    bootstrap = cluster.bootstrap_servers
    run = uuid.uuid4().hex[:8]
    figures = Figures("kill -9 a broker under callbacks")
    answered: dict[str, int] = {}
    env = {
        **ingress_env(cluster_env),
        "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
        "INGRESS_SPOOL_AFTER_SECONDS": "2",
    }
    with ServiceProcess("ingress", env) as ingress:
        url = f"{ingress.url}/exotel/callbacks/{CALLBACK_TOKEN}?{signed_query(command_id=run)}"
        reader = await FactReader(bootstrap, [CALL_STATUS]).start()
        try:
            async with httpx.AsyncClient(timeout=15) as http:

                async def post(n: int) -> None:
                    sid = f"cb-{run}-{n:05d}"
                    body = samples.load("v1_terminal.json") | {"CallSid": sid}
                    try:
                        answered[sid] = (await http.post(url, json=body)).status_code
                    except httpx.HTTPError:
                        answered[sid] = 0

                sending: list[asyncio.Task[None]] = []
                victim_id: int | None = None
                started = time.monotonic()
                for n in range(600):  # 40 a second for 15 s
                    sending.append(asyncio.create_task(post(n)))
                    if n == 160:
                        counts = await leaders(bootstrap, [CALL_STATUS])
                        victim_id = counts.most_common(1)[0][0]
                        cluster.kill_node(victim_id)
                    await asyncio.sleep(max(0.0, started + (n + 1) / 40 - time.monotonic()))
                await asyncio.gather(*sending)
            ok = {sid for sid, status in answered.items() if status == 200}
            await wait_until(
                lambda: ok <= {f.key for f in reader.seen if f.topic == CALL_STATUS},
                timeout=90,
                what="every callback answered 200 on call.status",
            )
        finally:
            await reader.stop()
        ours = [f for f in reader.seen if f.key and f.key.startswith(f"cb-{run}-")]
        ids = Counter(f.value["event_id"] for f in ours)
        figures["killed_broker"] = victim_id
        figures["callbacks"] = len(answered)
        figures["answered_200"] = len(ok)
        figures["other_answers"] = dict(Counter(s for s in answered.values() if s != 200))
        figures["facts"] = len(ours)
        figures["duplicate_facts"] = sum(n - 1 for n in ids.values())
        figures["spooled"] = _metric(ingress, "voicebus_ingress_spooled_total")
        figures.show()
        assert len(ok) == len(answered), "the ingress answered every callback with 200"


def _metric(service: ServiceProcess, name: str) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def _readyz(service: ServiceProcess) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{service.url}/readyz", timeout=5)
    return response.status_code, response.json()


async def test_two_brokers_down_for_20_s_lose_nothing_acknowledged_and_recover_alone(
    all_brokers_up: ApacheKafka, cluster_env: dict[str, str], producer: AIOKafkaProducer
) -> None:
    cluster = all_brokers_up
    bootstrap = cluster.bootstrap_servers
    run = uuid.uuid4().hex[:8]
    figures = Figures("two of three brokers down for 20 s")
    before = [f"outage-{run}-before-{n:03d}" for n in range(50)]
    after = [f"outage-{run}-after-{n:03d}" for n in range(50)]
    callbacks: dict[str, int] = {}
    with (
        SandboxServer(
            ring_seconds=0.02, talk_seconds=0.05, voice_calls_per_minute=60000
        ) as sandbox,
        ServiceProcess(
            "ingress", {**ingress_env(cluster_env), "CALLBACK_SIGNING_SECRET": SIGNING_SECRET}
        ) as ingress,
    ):
        env = {
            **executor_env(cluster_env, sandbox, ingress.url),
            "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
            "EXOTEL_VOICE_CALLS_PER_MINUTE": "60000",
        }
        url = f"{ingress.url}/exotel/callbacks/{CALLBACK_TOKEN}?{signed_query(command_id=run)}"
        reader = await FactReader(bootstrap, [CALL_CONNECT_RESULT, CALL_STATUS]).start()
        try:
            with ServiceProcess("executor", env) as executor:
                for n, command_id in enumerate(before):
                    await producer.send_and_wait(
                        CALL_CONNECT, connect(command_id, n), key=command_id.encode()
                    )
                await wait_until(
                    lambda: set(before) <= result_ids(reader), timeout=60, what="first results"
                )
                down = [n.node_id for n in cluster.nodes[:2]]
                for node_id in down:
                    cluster.kill_node(node_id)
                went_down = time.monotonic()
                executor_ready: tuple[int, dict[str, Any]] = (200, {})
                ingress_ready: tuple[int, dict[str, Any]] = (200, {})
                async with httpx.AsyncClient(timeout=15) as http:
                    n = 0
                    while time.monotonic() < went_down + 20:
                        sid = f"outage-{run}-cb-{n:04d}"
                        body = samples.load("v1_terminal.json") | {"CallSid": sid}
                        callbacks[sid] = (await http.post(url, json=body)).status_code
                        n += 1
                        executor_ready = _readyz(executor)
                        ingress_ready = _readyz(ingress)
                        await asyncio.sleep(0.25)
                figures["executor_readyz_during"] = executor_ready
                figures["ingress_readyz_during"] = ingress_ready
                for node_id in down:
                    cluster.start_node(node_id, wait=False)
                came_back = time.monotonic()
                await wait_until(
                    lambda: _readyz(executor)[0] == 200, timeout=120, what="executor ready again"
                )
                figures["executor_ready_after_s"] = round(time.monotonic() - came_back, 1)
                await wait_until(
                    lambda: _readyz(ingress)[1].get("spool_depth") == 0,
                    timeout=120,
                    what="the ingress spool drained",
                )
                figures["spool_drained_after_s"] = round(time.monotonic() - came_back, 1)
                for n, command_id in enumerate(after):
                    await producer.send_and_wait(
                        CALL_CONNECT, connect(command_id, n), key=command_id.encode()
                    )
                await wait_until(
                    lambda: set(after) <= result_ids(reader), timeout=120, what="later results"
                )
                figures["commands_answered_after_s"] = round(time.monotonic() - came_back, 1)
                ok = {sid for sid, status in callbacks.items() if status == 200}
                await wait_until(
                    lambda: ok <= {f.key for f in reader.seen if f.topic == CALL_STATUS},
                    timeout=60,
                    what="every callback answered 200 on call.status",
                )
        finally:
            await reader.stop()
        posts = posts_by_command(sandbox, f"outage-{run}-")
    figures["callbacks"] = len(callbacks)
    figures["answered_200"] = sum(1 for s in callbacks.values() if s == 200)
    figures["calls_placed"] = sum(posts.values())
    figures.show()
    assert all(status == 200 for status in callbacks.values()), callbacks
    assert executor_ready[0] == 503, executor_ready
    assert "kafka" in json.dumps(executor_ready[1]).lower(), executor_ready
    assert ingress_ready[1]["kafka"] == "unavailable", ingress_ready
    assert {c: n for c, n in posts.items() if n > 1} == {}, "nobody was called twice"
    assert set(posts) == set(before) | set(after)


def result_ids(reader: FactReader) -> set[str]:
    return {
        f.value["command_id"]
        for f in reader.seen
        if f.topic == CALL_CONNECT_RESULT and isinstance(f.value, dict)
    }
