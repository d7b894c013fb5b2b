"""Benchmark e: the webhook ingress against a raw callback endpoint, both driven by wrk.

Contenders, each a process on the same broker (the one services/brokers/choice.py picks:
Apache Kafka from its jars where Java is here; ``VOICEBUS_BROKER=tansu`` for Tansu):

* ``python -m services.ingress`` as deployed (token, ``sig``, parsing into a
  ``call.status`` fact, the spool decision, order per call, metrics, an INFO log line per
  callback, 200 only once Kafka acknowledged the fact);
* :mod:`bench.ingress_baseline`: starlette + uvicorn, ``await request.form()``, aiokafka
  ``send_and_wait`` (acks=all), 200.

wrk (Debian's package; ``make tools`` / ``deploy/install-tools.sh wrk`` installs it) posts
an Exotel v1 terminal callback as multipart/form-data (:file:`bench/ingress.lua`), a new
CallSid per request, with :data:`CONNECTIONS` connections for :data:`ROUND_SECONDS` per
round; the contenders alternate over :data:`ROUNDS` rounds and the medians are printed.

Then, on the ingress alone: the **spool path** (a second ingress whose Kafka does not
answer: every callback is fsync'd to its spool before the 200) and a **same-call burst**
(every request on one CallSid: one call's callbacks keep their order). Durability is
checked, not assumed: ``call.status`` must hold at least as many records as the ingress
answered 200 to, and the spool at least as many as the spool path did.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.harness import (
    CALLBACK_TOKEN,
    PARTITIONS,
    SIGNING_SECRET,
    Process,
    chosen_broker,
    create_topics,
    kafka_env,
)
from bench.throughput import Figure
from contracts.topics import CALL_STATUS, dlq
from services.common.callback_signature import CallbackSigner
from services.common.processes import free_port

WRK_SCRIPT = Path(__file__).resolve().with_name("ingress.lua")
BASELINE_TOPIC = "bench.ingress.baseline"
CONNECTIONS = 32
THREADS = 2
ROUND_SECONDS = 10
WARM_UP_SECONDS = 3
ROUNDS = 3
TARGET_RATIO = 0.8
TARGET_PER_SECOND = 2000
TARGET_P99_MS = 50


@dataclass(frozen=True)
class WrkRun:
    per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    #: non-2xx/3xx answers plus socket errors and timeouts
    failures: int
    #: CPU milliseconds per request of the contender process (all its workers)
    cpu_ms: float

    @property
    def answered_ok(self) -> int:
        return self.requests - self.failures


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError(
            "wrk is not installed: `make tools` or `sh deploy/install-tools.sh wrk` (root, apt)"
        )
    return found


def callback_path() -> str:
    """The ingress's callback path as the executor signs it (token, correlation, sig)."""
    signed = CallbackSigner(SIGNING_SECRET).signed(
        {"command_id": "bench-ingress", "account": "default", "api": "v1"}
    )
    return f"/exotel/callbacks/{CALLBACK_TOKEN}?{urlencode(signed)}"


def process_cpu(process: Process) -> float:
    """CPU seconds of the process and its children (uvicorn workers), so far."""
    if process.pid is None:
        return 0.0
    total = 0.0
    pids = [process.pid, *children(process.pid)]
    for pid in pids:
        total += cpu_of(pid)
    return total


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    found = [int(child) for child in text.split()]
    return found + [grand for child in found for grand in children(child)]


def cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_wrk(process: Process, path: str, *, seconds: int, mode: str = "distinct") -> WrkRun:
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_MODE": mode,
        "BENCH_RUN": uuid.uuid4().hex[:10],
    }
    command = [
        wrk_binary(),
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "20s",
        "-s",
        str(WRK_SCRIPT),
        process.url,
    ]
    cpu0 = process_cpu(process)
    child = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await child.communicate()
    cpu1 = process_cpu(process)
    if child.returncode != 0:
        raise RuntimeError(f"wrk failed ({child.returncode}): {err.decode()[-2000:]}")
    line = out.decode().strip().splitlines()[-1]
    stats: dict[str, int] = json.loads(line)
    failures = sum(
        stats[k] for k in ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    requests = stats["requests"]
    return WrkRun(
        per_second=(requests - failures) / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        requests=requests,
        failures=failures,
        cpu_ms=1000 * (cpu1 - cpu0) / max(1, requests),
    )


def ingress_env(bootstrap: str, spool_dir: Path, *, idempotence: bool) -> dict[str, str]:
    return {
        **kafka_env(bootstrap),
        "KAFKA_ENABLE_IDEMPOTENCE": str(idempotence).lower(),
        "CALLBACK_TOKEN": CALLBACK_TOKEN,
        "CALLBACK_SIGNING_SECRET": SIGNING_SECRET,
        "INGRESS_SPOOL_DIR": str(spool_dir),
        "LOG_LEVEL": "INFO",
    }


async def topic_records(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        begins = await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - begins[tp] for tp in partitions)
    finally:
        await consumer.stop()


def readyz(process: Process) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(process.url + "/readyz", timeout=5).json()
    return body


async def wait_accepting(process: Process, timeout: float = 30.0) -> None:
    """Until the ingress accepts callbacks (its spool is open), Kafka or not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            if "spool_depth" in await asyncio.to_thread(readyz, process):
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the ingress did not accept callbacks within {timeout}s")


def median_run(runs: list[WrkRun]) -> WrkRun:
    """The run with the median callbacks/s (its latencies with it)."""
    return sorted(runs, key=lambda run: run.per_second)[len(runs) // 2]


def _ms(value: float) -> float:
    return round(value, 1)


async def ingress_throughput() -> Figure:
    wrk_binary()
    path = callback_path()
    with tempfile.TemporaryDirectory(prefix="voicebus-bench-ingress-") as scratch:
        async with chosen_broker() as broker:
            bootstrap = broker.bootstrap_servers
            await create_topics(bootstrap, [CALL_STATUS, dlq(CALL_STATUS), BASELINE_TOPIC])
            env = ingress_env(bootstrap, Path(scratch) / "spool", idempotence=broker.transactions)
            ingress = Process("services.ingress", env)
            baseline = Process(
                "bench.ingress_baseline",
                {**kafka_env(bootstrap), "BASELINE_TOPIC": BASELINE_TOPIC},
            )
            with ingress, baseline:
                ingress_ok = 0
                for process, where in ((ingress, path), (baseline, "/callbacks")):
                    warm = await run_wrk(process, where, seconds=WARM_UP_SECONDS)
                    if process is ingress:
                        ingress_ok += warm.answered_ok
                ingress_runs: list[WrkRun] = []
                baseline_runs: list[WrkRun] = []
                for round_ in range(ROUNDS):
                    order = [(ingress, path, ingress_runs), (baseline, "/callbacks", baseline_runs)]
                    for process, where, runs in order if round_ % 2 == 0 else order[::-1]:
                        runs.append(await run_wrk(process, where, seconds=ROUND_SECONDS))
                ingress_ok += sum(run.answered_ok for run in ingress_runs)
                burst = await run_wrk(ingress, path, seconds=ROUND_SECONDS, mode="same")
                ingress_ok += burst.answered_ok
                await asyncio.sleep(1)
                in_kafka = await topic_records(bootstrap, CALL_STATUS)
                spooled_before = readyz(ingress).get("spool_depth", 0)
            if in_kafka + spooled_before < ingress_ok:
                raise RuntimeError(
                    f"durability: {ingress_ok} callbacks answered 200, but only {in_kafka} "
                    f"records on {CALL_STATUS} and {spooled_before} spooled"
                )
            spool = await spool_path(Path(scratch) / "spool-only", idempotence=broker.transactions)
            kind = broker.choice.label

    ing, base = median_run(ingress_runs), median_run(baseline_runs)
    ratio = ing.per_second / base.per_second
    line = (
        f"ingress: ingress/baseline = {ratio:.2f} ({ing.per_second:.0f} vs "
        f"{base.per_second:.0f} callbacks/s, p50/p99 {_ms(ing.p50_ms)}/{_ms(ing.p99_ms)} vs "
        f"{_ms(base.p50_ms)}/{_ms(base.p99_ms)} ms); spool {spool.per_second:.0f}/s "
        f"p99 {_ms(spool.p99_ms)} ms; same call {burst.per_second:.0f}/s p99 "
        f"{_ms(burst.p99_ms)} ms ({CONNECTIONS} connections, {ROUND_SECONDS} s x {ROUNDS} "
        f"rounds, medians, {kind}; target >= {TARGET_RATIO} and >= {TARGET_PER_SECOND}/s "
        f"at p99 < {TARGET_P99_MS} ms)"
    )
    details: dict[str, float | int | str] = {
        "broker": kind,
        "ingress_per_s": round(ing.per_second, 1),
        "baseline_per_s": round(base.per_second, 1),
        "ingress_p50_ms": _ms(ing.p50_ms),
        "ingress_p99_ms": _ms(ing.p99_ms),
        "baseline_p50_ms": _ms(base.p50_ms),
        "baseline_p99_ms": _ms(base.p99_ms),
        "ingress_rounds": ", ".join(f"{r.per_second:.0f}" for r in ingress_runs),
        "baseline_rounds": ", ".join(f"{r.per_second:.0f}" for r in baseline_runs),
        "ingress_cpu_ms_per_callback": round(statistics.median(r.cpu_ms for r in ingress_runs), 3),
        "baseline_cpu_ms_per_callback": round(
            statistics.median(r.cpu_ms for r in baseline_runs), 3
        ),
        "ingress_failures": sum(r.failures for r in ingress_runs),
        "baseline_failures": sum(r.failures for r in baseline_runs),
        "spool_per_s": round(spool.per_second, 1),
        "spool_p50_ms": _ms(spool.p50_ms),
        "spool_p99_ms": _ms(spool.p99_ms),
        "spool_failures": spool.failures,
        "same_call_per_s": round(burst.per_second, 1),
        "same_call_p50_ms": _ms(burst.p50_ms),
        "same_call_p99_ms": _ms(burst.p99_ms),
        "same_call_failures": burst.failures,
        "call_status_records": in_kafka,
        "answered_200": ingress_ok,
        "connections": CONNECTIONS,
        "seconds": ROUND_SECONDS,
    }
    return Figure("ingress", ratio, line, details)


async def spool_path(spool_dir: Path, *, idempotence: bool) -> WrkRun:
    """An ingress whose Kafka never answers: every 200 is an fsync'd spool append."""
    nowhere = f"127.0.0.1:{free_port()}"
    env = ingress_env(nowhere, spool_dir, idempotence=idempotence)
    spooling = Process("services.ingress", env)
    # /readyz waits for Kafka to have been reached once: only the process is awaited here.
    await asyncio.to_thread(spooling.start, ready_path="/healthz")
    try:
        await wait_accepting(spooling)
        run = await run_wrk(spooling, callback_path(), seconds=ROUND_SECONDS)
        depth = int(readyz(spooling).get("spool_depth", 0))
    finally:
        spooling.__exit__(None, None, None)
    if depth < run.answered_ok:
        raise RuntimeError(f"spool: {run.answered_ok} answered 200, {depth} records spooled")
    return run
