"""Benchmark: what a rebalance costs (issue 12 item 5: moved partitions served within 10 s).

Three executors in one group consume ``call.connect`` over 12 partitions while commands
arrive at a steady 25/s, each on its own key. A fourth replica joins, then the first one
leaves (SIGTERM, a clean shutdown). For every command the wait is publish → its first
result record (both Kafka CreateTimes, so the reader's pace does not count). Printed:
the longest wait among commands published in the steady phase (the baseline of the same
run), and among those published from each change until the group served them again. A
partition in motion holds its commands until its new owner has opened its lane (fencing
the old owner on Apache Kafka) and restored its state; only that delay shows here.

The ratio is 10 s (the target) over the worse of the two changes: ≥ 1 means met. The
reliability test tests/reliability/test_rebalance.py runs the same story for correctness
(every command reaches Exotel once) without asserting any time.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter

from aiokafka import AIOKafkaProducer

from bench.harness import (
    PARTITIONS,
    Process,
    ResultReader,
    bench_stack,
    connect_command,
)
from bench.throughput import Figure
from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT

TARGET_SECONDS = 10.0
PER_SECOND = 25.0
STEADY_SECONDS = 8.0
#: How long after each change the group is left alone before the next one.
SETTLE_SECONDS = 14.0


class _Load:
    """Publishes distinct call.connect commands at ``PER_SECOND``, noting when each left."""

    def __init__(self, bootstrap: str, run: str) -> None:
        self.bootstrap = bootstrap
        self.run = run
        self.published: dict[str, float] = {}
        self._stop = asyncio.Event()

    async def __call__(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            index = 0
            started = time.monotonic()
            while not self._stop.is_set():
                key, command = connect_command(self.run, index)
                value = json.dumps(command).encode()
                await producer.send_and_wait(CALL_CONNECT, value, key=key.encode())
                self.published[command["command_id"]] = time.time()
                index += 1
                await asyncio.sleep(max(0.0, started + index / PER_SECOND - time.monotonic()))
        finally:
            await producer.stop()

    def stop(self) -> None:
        self._stop.set()


def _longest_wait(load: _Load, reader: ResultReader, since: float, until: float) -> float:
    """The longest publish → first result among commands published in [since, until];
    a command without a result yet counts until now."""
    now = time.time()
    waits = [
        (reader.seen[c][0] / 1000 if c in reader.seen else now) - t
        for c, t in load.published.items()
        if since <= t <= until
    ]
    return max(waits, default=0.0)


async def rebalance_cost() -> Figure:
    async with bench_stack(SANDBOX_RATE_LIMITS_ENABLED="false") as bench:
        run = f"rb-{uuid.uuid4().hex[:6]}"
        group = f"bench-rebalance-{run}"
        env = {"EXECUTOR_GROUP_ID": group, "EXECUTOR_CALL_WATCH_ENABLED": "false"}
        reader = await ResultReader(bench.bootstrap, CALL_CONNECT_RESULT, run).start()
        load = _Load(bench.bootstrap, run)
        replicas: list[Process] = [bench.executor(**env) for _ in range(3)]
        try:
            await asyncio.gather(*(asyncio.to_thread(r.start) for r in replicas))
            loading = asyncio.create_task(load())
            await asyncio.sleep(STEADY_SECONDS)
            steady = _longest_wait(load, reader, time.time() - STEADY_SECONDS + 2, time.time() - 1)

            joined_at = time.time()
            fourth = bench.executor(**env)
            await asyncio.to_thread(fourth.start)
            replicas.append(fourth)
            await asyncio.sleep(SETTLE_SECONDS)
            join = _longest_wait(load, reader, joined_at, time.time() - 3)

            left_at = time.time()
            await asyncio.to_thread(replicas.pop(0).stop)
            await asyncio.sleep(SETTLE_SECONDS)
            leave = _longest_wait(load, reader, left_at, time.time() - 3)
            load.stop()
            await loading
            await reader.wait_for(len(load.published), timeout=60, processes=replicas)
        finally:
            load.stop()
            await asyncio.gather(*(asyncio.to_thread(r.stop) for r in replicas))
            await reader.stop()
        posts = Counter(
            r.get("command_id")
            for r in bench.sandbox.control.requests()
            if r["method"] == "POST" and str(r.get("command_id", "")).startswith(run)
        )
    worst = max(join, leave)
    twice = sum(1 for n in posts.values() if n > 1)
    ratio = TARGET_SECONDS / worst if worst > 0 else float("inf")
    return Figure(
        "rebalance",
        ratio,
        f"rebalance: moved partitions served again within {join:.1f} s (a replica joins) and "
        f"{leave:.1f} s (one leaves) vs {steady:.1f} s in steady state; "
        f"10 s / worst = {ratio:.2f} (target ≥ 1), {twice} commands sent twice",
        {
            "join_longest_wait_s": round(join, 2),
            "leave_longest_wait_s": round(leave, 2),
            "steady_longest_wait_s": round(steady, 2),
            "commands": len(load.published),
            "calls_placed": sum(posts.values()),
            "sent_twice": twice,
            "per_second": PER_SECOND,
            "partitions": PARTITIONS,
        },
    )
