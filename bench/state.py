"""Executor state at scale: ready time, restore rate and RSS against the size of history.

Method: one Apache Kafka broker (12 partitions per topic). The ledger and the command index
are filled directly with N ``done`` call.connect entries, spread over the 12 partitions,
N = 10k, then 100k, then 1M (the history grows in place). An entry is what a command leaves
once the ledger is compacted: its ``done`` ledger record (~0.5 KiB of JSON) and its
command-index record, as an executor writes them; so a restore of N entries reads 2N
records (the intents an executor also writes are compacted away). For each N an executor
in a new consumer group starts:

* **cold**: with an empty state directory: it restores its partitions from Kafka;
* **warm**: again with the directory the cold run left: it reads only what is new.

Measured: start to ``/readyz`` 200, the restore's records and seconds (from ``/readyz``:
entries/s is N over those seconds, records/s the records read over them), and the
process's RSS when ready. The ratio printed is the warm ready time at 1M over the warm
ready time at 10k in the same run (target ≤ 1.5). Then three replicas start together in
one group on the 1M history and are read once the group has settled (every partition
owned by one ready replica, unchanged for 5 s): each reports its partitions, the ledger
entries it holds for them, the records it restored and its RSS.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.harness import CALLBACK_TOKEN, SIGNING_SECRET, Process
from bench.throughput import Figure
from contracts.results import CommandResult
from contracts.topics import ALL_TOPICS
from services.brokers.apache_kafka import ApacheKafka
from services.common.kafka import ensure_topics
from services.common.kafka_health import HEALTH_TOPIC, HEALTH_TOPIC_CONFIG
from services.common.settings import KafkaSettings
from services.executor.ledger import LedgerEntry
from services.executor.state.records import (
    INDEX_TOPIC,
    INDEX_TOPIC_CONFIG,
    LEDGER_TOPIC,
    LEDGER_TOPIC_CONFIG,
    index_record,
    ledger_record,
)

PARTITIONS = 12
SIZES = (10_000, 100_000, 1_000_000)


@dataclass(frozen=True)
class Start:
    ready_seconds: float
    records: int
    restore_seconds: float
    rss_mb: float

    @property
    def records_per_second(self) -> float:
        return self.records / self.restore_seconds if self.restore_seconds > 0 else 0.0

    def entries_per_second(self, entries: int) -> float:
        return entries / self.restore_seconds if self.restore_seconds > 0 else 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def entry_bytes(command_id: str) -> bytes:
    at = datetime.now(UTC)
    result = CommandResult(
        command_id=command_id,
        command_type="call.connect",
        outcome="accepted",
        call_sid=uuid.uuid4().hex,
        account="default",
        api="v1",
        attempts=1,
        requested_at=at,
        completed_at=at,
    )
    entry = LedgerEntry(
        command_id=command_id,
        command_type="call.connect",
        state="done",
        account="default",
        at=at,
        evidence={"from": "+919876543210", "to": "+919812345678", "api": "v1"},
        result=result,
    )
    return entry.model_dump_json().encode()


async def fill(bootstrap: str, start: int, stop: int) -> float:
    """Entries ``start``..``stop`` on the ledger and the index; the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        max_batch_size=1024 * 1024,
        enable_idempotence=False,
    )
    await producer.start()
    began = time.monotonic()
    template = entry_bytes("TEMPLATE")
    now = time.time()
    try:
        pending = []
        for index in range(start, stop):
            command_id = f"history-{index:08d}"
            key = f"call.connect:{command_id}"
            partition = index % PARTITIONS
            value = template.replace(b"TEMPLATE", command_id.encode())
            records = (
                ledger_record(key=key, partition=partition, state="done", at=now, value=value),
                index_record(key=key, partition=partition, state="done", at=now),
            )
            for record in records:
                ack = await producer.send(
                    record.topic,
                    record.value,
                    key=record.key,
                    partition=record.partition,
                    headers=record.headers,
                )
                pending.append(ack)
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - began


def executor_env(bootstrap: str, *, group: str, state_dir: Path | None) -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": "true",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "EXOTEL_ACCOUNT_SID": "bench",
        "EXOTEL_API_KEY": "bench-key",
        "EXOTEL_API_TOKEN": "bench-token",
        "EXOTEL_BASE_URL": "http://127.0.0.1:9",
        "EXOTEL_CCM_BASE_URL": "http://127.0.0.1:9",
        "CALLBACK_PUBLIC_URL": "http://127.0.0.1:9",
        "CALLBACK_TOKEN": CALLBACK_TOKEN,
        "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
        "EXECUTOR_GROUP_ID": group,
        "EXECUTOR_CALL_WATCH_ENABLED": "false",
        "EXECUTOR_SHUTDOWN_GRACE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
    }
    if state_dir is not None:
        env["EXECUTOR_STATE_DIR"] = str(state_dir)
    return env


def readyz(process: Process) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{process.url}/readyz", timeout=5).json()
    return body


async def start_once(bootstrap: str, *, group: str, state_dir: Path) -> Start:
    process = Process(
        "services.executor", executor_env(bootstrap, group=group, state_dir=state_dir)
    )
    began = time.monotonic()
    process.start(timeout=600)  # not ``with process``: entering it starts it again
    try:
        ready = time.monotonic() - began
        restore = readyz(process).get("restored_since_start", {})
        records, seconds = int(restore.get("records", 0)), float(restore.get("seconds", 0))
        rss = rss_mb(process.pid or 0)
    finally:
        process.stop()
        process.cleanup()
    return Start(ready, records, seconds, rss)


def probe(process: Process) -> tuple[int, dict[str, Any]]:
    """``/readyz``'s status and body (0 and empty while it does not answer)."""
    try:
        response = httpx.get(f"{process.url}/readyz", timeout=5)
    except httpx.HTTPError:
        return 0, {}
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def settled_group(
    processes: list[Process], *, timeout: float, stable_seconds: float = 5.0
) -> list[dict[str, Any]]:
    """Each replica's ``/readyz`` once the group has settled: every replica ready (no
    restore running) and owning some partitions, every partition owned by exactly one,
    and all of it unchanged for ``stable_seconds``. (Reading each replica as soon as it is
    first ready reads the ones that joined late before their assignment.)"""
    deadline = time.monotonic() + timeout
    stable_since: float | None = None
    last: list[list[int]] = []
    while time.monotonic() < deadline:
        for process in processes:
            if not process.running():
                raise RuntimeError(f"a replica exited:\n{process.output[-3000:]}")
        answers = [await asyncio.to_thread(probe, p) for p in processes]
        owned = [sorted(body.get("state", {}).get("partitions", [])) for _, body in answers]
        settled = (
            all(status == 200 for status, _ in answers)
            and all(owned)
            and sorted(p for o in owned for p in o) == list(range(PARTITIONS))
        )
        if settled and owned == last:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= stable_seconds:
                return [body for _, body in answers]
        else:
            stable_since = None
        last = owned
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the three replicas' group never settled: partitions {last}")


@dataclass(frozen=True)
class Replica:
    partitions: list[int]
    entries: int
    records_restored: int
    rss_mb: float


async def three_replicas(bootstrap: str) -> list[Replica]:
    """Three replicas started together in one group on the whole history, read once the
    group has settled: the partitions each owns, the ledger entries it holds for them,
    the records it restored (its ledger partitions, and the whole index) and its RSS."""
    group = f"bench-state-3-{uuid.uuid4().hex[:6]}"
    dirs = [Path(tempfile.mkdtemp(prefix="bench-state-")) for _ in range(3)]
    processes = [
        Process("services.executor", executor_env(bootstrap, group=group, state_dir=d))
        for d in dirs
    ]
    try:
        for process in processes:
            process.start(ready_path=None)
        bodies = await settled_group(processes, timeout=900)
        return [
            Replica(
                partitions=body["state"]["partitions"],
                entries=int(body["state"]["entries"]),
                records_restored=int(body.get("restored_since_start", {}).get("records", 0)),
                rss_mb=round(rss_mb(process.pid or 0)),
            )
            for process, body in zip(processes, bodies, strict=True)
        ]
    finally:
        for process in processes:
            process.stop()
            process.cleanup()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


@asynccontextmanager
async def state_broker() -> AsyncIterator[str]:
    """One Apache Kafka broker with every topic the executor uses (12 partitions); its
    bootstrap address."""
    kafka = ApacheKafka(broker_config={"group.initial.rebalance.delay.ms": "3000"})
    await asyncio.to_thread(kafka.start)
    try:
        settings = KafkaSettings(
            bootstrap_servers=kafka.bootstrap_servers, topic_partitions=PARTITIONS
        )
        await ensure_topics(
            settings,
            (*ALL_TOPICS, LEDGER_TOPIC, INDEX_TOPIC, HEALTH_TOPIC),
            configs={
                LEDGER_TOPIC: LEDGER_TOPIC_CONFIG,
                INDEX_TOPIC: INDEX_TOPIC_CONFIG,
                HEALTH_TOPIC: HEALTH_TOPIC_CONFIG,
            },
        )
        yield kafka.bootstrap_servers
    finally:
        await asyncio.to_thread(kafka.stop)


async def state_at_scale() -> Figure:
    async with state_broker() as bootstrap:
        details: dict[str, float | int | str] = {}
        warm: dict[int, Start] = {}
        filled = 0
        for size in SIZES:
            seconds = await fill(bootstrap, filled, size)
            filled = size
            print(f"[bench] history {size}: filled in {seconds:.1f} s", flush=True)
            state_dir = Path(tempfile.mkdtemp(prefix="bench-state-"))
            try:
                group = f"bench-state-{size}-{uuid.uuid4().hex[:6]}"
                cold = await start_once(bootstrap, group=group, state_dir=state_dir)
                again = await start_once(bootstrap, group=group, state_dir=state_dir)
            finally:
                shutil.rmtree(state_dir, ignore_errors=True)
            warm[size] = again
            print(f"[bench] history {size}: cold {cold} / warm {again}", flush=True)
            label = f"{size // 1000}k"
            details |= {
                f"{label} cold ready s": round(cold.ready_seconds, 2),
                f"{label} cold restore s": round(cold.restore_seconds, 2),
                f"{label} cold restore entries/s": round(cold.entries_per_second(size)),
                f"{label} cold restore records/s": round(cold.records_per_second),
                f"{label} cold RSS MB": round(cold.rss_mb),
                f"{label} warm ready s": round(again.ready_seconds, 2),
                f"{label} warm RSS MB": round(again.rss_mb),
            }
        replicas = await three_replicas(bootstrap)
        for number, replica in enumerate(replicas, 1):
            print(f"[bench] 3 replicas: replica {number}: {replica}", flush=True)
        details["3 replicas: entries held"] = json.dumps([r.entries for r in replicas])
        details["3 replicas: partitions"] = json.dumps([r.partitions for r in replicas])
        details["3 replicas: records restored"] = json.dumps([r.records_restored for r in replicas])
        details["3 replicas: RSS MB"] = json.dumps([r.rss_mb for r in replicas])
    ratio = warm[SIZES[-1]].ready_seconds / warm[SIZES[0]].ready_seconds
    line = (
        f"state: warm ready 1M / 10k = {ratio:.2f} (target <= 1.5); "
        f"cold restore at 1M {details['1000k cold restore entries/s']} entries/s "
        f"= {details['1000k cold restore records/s']} records/s (target >= 100000 entries/s), "
        f"RSS {details['1000k cold RSS MB']} MB (target <= 300)"
    )
    return Figure("state", ratio, line, details)
