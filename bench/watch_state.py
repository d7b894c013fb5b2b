"""The call watch's restore: time, records read and peak memory, warm against cold.

Method: one Apache Kafka broker (12 partitions per topic). 24 h of history is written as
the services write it: 100k accepted ``call.connect.result`` facts, a terminal
``call.status`` callback for 97k of them, a ``call.details`` poll fact for 95k (3k calls
still missing their terminal, 2k finished calls still to finalise). Then one call watch
(``CallWatchRunner``, Exotel faked, nothing falls due) restores all 12 partitions, each
run in a fresh process (so its peak RSS is its own):

* **memory**: without a store, as before issue 12: every start reads the horizon from
  Kafka and keeps a row per call in memory;
* **cold**: with an empty state directory: the same reading, rows into SQLite;
* **warm**: again with the directory the cold run left, after 1,000 more records (new
  calls accepted and ended) were written: only those are read.

Measured: seconds from the assignment to every partition read up to its high-water mark,
records read (``CallWatchRunner.progress``, what ``/readyz`` shows under ``call_watch``),
the open items in memory and the process's peak RSS. The ratio printed is warm seconds
over cold seconds in the same run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.harness import bulk_producer
from bench.state import entry_bytes
from bench.throughput import Figure
from contracts.status import CallStatusEvent
from contracts.topics import CALL_CONNECT_RESULT, CALL_DETAILS, CALL_STATUS
from services.brokers.apache_kafka import ApacheKafka
from services.common.kafka import cluster_id, ensure_topics
from services.common.settings import KafkaSettings

PARTITIONS = 12
CALLS = 100_000
ENDED = 97_000
FINALISED = 95_000
NEW_RECORDS = 1_000


def _templates() -> tuple[bytes, bytes, bytes]:
    at = datetime.now(UTC)
    # The accepted call.connect result the state bench's ledger entries carry.
    result = json.loads(entry_bytes("cmd-SID"))["result"] | {"call_sid": "SID"}
    status = CallStatusEvent(
        event_id=str(uuid.uuid4()),
        call_sid="SID",
        event_type="terminal",
        status="completed",
        exotel_status="completed",
        direction="outbound-api",
        from_="+919876543210",
        to="+919812345678",
        started_at=at,
        ended_at=at,
        conversation_duration=42,
        command_id="cmd-SID",
        account="default",
        api="v1",
        source="callback",
        received_at=at,
        raw={"CallSid": "SID", "Status": "completed", "DialCallDuration": "42"},
    )
    details = {"call_sid": "SID", "source": "poll", "status": "completed", "price": 1.5}
    return (
        json.dumps(result).encode(),
        status.model_dump_json(by_alias=True).encode(),
        json.dumps(details).encode(),
    )


async def fill(bootstrap: str, start: int, stop: int, *, ended: int, finalised: int) -> float:
    """Calls ``start``..``stop``: accepted; those below ``ended`` ended, below
    ``finalised`` finalised. The seconds it took."""
    producer = bulk_producer(bootstrap)
    await producer.start()
    result, status, details = _templates()
    began = time.monotonic()
    try:
        last: asyncio.Future[Any] | None = None
        for index in range(start, stop):
            sid = f"CAbench{index:09d}".encode()
            records = [(CALL_CONNECT_RESULT, result)]
            if index < ended:
                records.append((CALL_STATUS, status))
            if index < finalised:
                records.append((CALL_DETAILS, details))
            for topic, template in records:
                last = await producer.send(topic, template.replace(b"SID", sid), key=sid)
            if index % 20_000 == 0:
                await producer.flush()
        await producer.flush()
        if last is not None:
            await last  # raises if the last batch was not taken
    finally:
        await producer.stop()
    return time.monotonic() - began


class NoExotel:
    """Nothing falls due in the bench: a request would be a bug."""

    async def call_details(self, call_sid: str, api: Any = None) -> Any:
        raise AssertionError(f"the bench polled {call_sid} ({api})")

    async def completed_call_legs(self, call_sid: str) -> Any:
        raise AssertionError(f"the bench finalised {call_sid}")

    async def call_legs_v3(self, call_sid: str) -> Any:
        raise AssertionError(f"the bench finalised {call_sid}")


class NoMetrics:
    def polled(self, outcome: str) -> None: ...

    def recovered(self) -> None: ...

    def watched(self, count: int) -> None: ...

    def finalised(self, outcome: str) -> None: ...

    def finalisations(self, count: int) -> None: ...


async def publish_nothing(value: bytes, topic: str, key: bytes, headers: dict[str, str]) -> None:
    raise AssertionError(f"the bench published {len(value)} bytes on {topic} ({key!r}, {headers})")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _restore(bootstrap: str, state_dir: str | None) -> dict[str, Any]:
    from services.executor.call_watch import CallWatch, WatchPolicy
    from services.executor.call_watch_kafka import (
        WATCHED_TOPICS,
        CallWatchRunner,
        WatchAccount,
    )
    from services.executor.state.store import StateStore, open_store
    from services.executor.state.watch_store import WatchStore

    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_partitions=PARTITIONS)
    policy = WatchPolicy(after_seconds=3600, finalise_after_seconds=3600)
    store: StateStore | None = None
    history: WatchStore | None = None
    if state_dir is not None:
        store = open_store(Path(state_dir))
        store.adopt(await cluster_id(settings))
        history = WatchStore(store, WATCHED_TOPICS)
        watch = CallWatch(policy, history=history)
    else:
        watch = CallWatch(policy)
    runner = CallWatchRunner(
        settings,
        group_id=f"bench-watch-{uuid.uuid4().hex[:8]}",
        watch=watch,
        accounts={"default": WatchAccount(gateway=NoExotel(), default_api="v1")},
        publish=publish_nothing,
        metrics=NoMetrics(),
        sweep_seconds=3600,
        store=history,
    )
    await runner.start()
    try:
        deadline = time.monotonic() + 600
        while runner.progress.restores < 1 or runner.progress.active:
            if time.monotonic() > deadline:
                raise TimeoutError("the call watch did not restore within 600 s")
            await asyncio.sleep(0.05)
        last: dict[str, Any] = dict(runner.progress.last)
        held = len(watch) + watch.finalisations
        rows_in_memory = len(getattr(watch.history, "rows", {}))
    finally:
        await runner.stop()
        if store is not None:
            store.close()
    stored = sum(f.stat().st_size for f in Path(state_dir).iterdir()) if state_dir else 0
    return {
        "store MB": round(stored / 2**20, 1),
        "seconds": float(last["seconds"]),
        "records": int(last["records"]),
        "watched": len(watch),
        "finalisations": watch.finalisations,
        "open items in memory": held,
        "rows in memory": rows_in_memory,
        "peak RSS MB": round(peak_rss_mb()),
    }


def restore_in_child(bootstrap: str, state_dir: str | None) -> dict[str, Any]:
    return asyncio.run(_restore(bootstrap, state_dir))


async def restore(bootstrap: str, state_dir: Path | None) -> dict[str, Any]:
    """One restore in a fresh process (its peak RSS is its own)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        future = pool.submit(
            restore_in_child, bootstrap, None if state_dir is None else str(state_dir)
        )
        return await asyncio.wrap_future(future)


async def watch_restore() -> Figure:
    kafka = ApacheKafka()
    await asyncio.to_thread(kafka.start)
    state_dir = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    try:
        bootstrap = kafka.bootstrap_servers
        settings = KafkaSettings(bootstrap_servers=bootstrap, topic_partitions=PARTITIONS)
        await ensure_topics(settings, (CALL_CONNECT_RESULT, CALL_STATUS, CALL_DETAILS))
        seconds = await fill(bootstrap, 0, CALLS, ended=ENDED, finalised=FINALISED)
        print(f"[bench] {CALLS} calls of history written in {seconds:.1f} s", flush=True)
        memory = await restore(bootstrap, None)
        print(f"[bench] without a store: {memory}", flush=True)
        cold = await restore(bootstrap, state_dir)
        print(f"[bench] cold: {cold}", flush=True)
        # 1,000 more records: 500 calls accepted and ended.
        more = NEW_RECORDS // 2
        await fill(bootstrap, CALLS, CALLS + more, ended=CALLS + more, finalised=0)
        warm = await restore(bootstrap, state_dir)
        print(f"[bench] warm: {warm}", flush=True)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        await asyncio.to_thread(kafka.stop)
    ratio = warm["seconds"] / cold["seconds"] if cold["seconds"] > 0 else 0.0
    details: dict[str, float | int | str] = {}
    for name, figures in (("memory", memory), ("cold", cold), ("warm", warm)):
        details |= {f"{name} {key}": value for key, value in figures.items()}
    line = (
        f"watchstate: warm / cold restore seconds = {ratio:.3f} "
        f"({warm['records']} vs {cold['records']} records read; "
        f"{CALLS // 1000}k calls of history)"
    )
    return Figure("watchstate", ratio, line, details)
