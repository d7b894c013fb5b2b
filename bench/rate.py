"""Benchmarks c and d: how precisely the executor holds an Exotel rate limit.

c. rate precision — one executor, limit L per second (``EXOTEL_VOICE_CALLS_PER_MINUTE`` =
   60 L, and the sandbox's voice limit the same), 3 L offered for 20 s.
d. scale-out — three executor replicas in one group sharing that limit (each replica's
   share follows the partitions it owns), 3 L offered for 20 s.

The figure is achieved / L, where "achieved" counts the requests the sandbox accepted in
the 20 whole seconds after the first one (its per-second buckets), while the offered load
keeps a backlog; 429s are the sandbox's own count of requests it rejected for the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import httpx

from bench.harness import (
    PARTITIONS,
    Bench,
    Process,
    ResultReader,
    bench_stack,
    commands,
    metric_value,
    publish,
    wait_for_shares,
)
from bench.throughput import Figure
from contracts.topics import CALL_CONNECT_RESULT

WINDOW_SECONDS = 20


def _voice(stats: dict[str, Any]) -> dict[str, Any]:
    voice: dict[str, Any] = stats["families"]["voice"]
    return voice


def _buckets(stats: dict[str, Any]) -> dict[int, int]:
    return {int(b["second"]): int(b["count"]) for b in _voice(stats)["per_second"]}


async def _wait_for_first_request(bench: Bench, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        buckets = _buckets(await asyncio.to_thread(bench.rate_stats))
        if buckets:
            return min(buckets)
        await asyncio.sleep(0.1)
    raise TimeoutError("the executors sent nothing")


async def _offered_run(
    bench: Bench, executors: list[Process], *, limit: float, offered: float
) -> dict[str, Any]:
    """Warm the group up with a few commands, then offer ``offered``/s for the window and
    read the sandbox's counters once the window has passed."""
    warm_run = f"w{uuid.uuid4().hex[:6]}"
    reader = await ResultReader(bench.bootstrap, CALL_CONNECT_RESULT, prefix=warm_run).start()
    try:
        await publish(bench.bootstrap, commands(warm_run, len(executors) * 3))
        await reader.wait_for(len(executors) * 3, 60, executors)
    finally:
        await reader.stop()
    # The group is consuming. Start from clean counters and empty windows (the warm-up
    # requests would otherwise count against the sandbox's minute).
    await asyncio.sleep(max(1.0, len(executors) / limit))
    await asyncio.to_thread(bench.reset_sandbox)
    await asyncio.to_thread(bench.sandbox_admin, "POST", "rate-limits", _limits(limit))

    run = f"r{uuid.uuid4().hex[:6]}"
    count = int(offered * (WINDOW_SECONDS + 2))
    publisher = asyncio.create_task(
        publish(bench.bootstrap, commands(run, count), per_second=offered)
    )
    try:
        first = await _wait_for_first_request(bench)
        # the window: the 20 whole seconds after the (partial) first one
        end = first + 1 + WINDOW_SECONDS
        while time.time() < end + 0.5:
            await asyncio.sleep(0.1)
        stats = await asyncio.to_thread(bench.rate_stats)
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
    buckets = _buckets(stats)
    in_window = sum(n for second, n in buckets.items() if first + 1 <= second < end)
    voice = _voice(stats)
    return {
        "achieved_per_s": in_window / WINDOW_SECONDS,
        "rejected_429": int(voice["rejected_429"]),
        "max_per_second": int(voice["max_per_second"]),
        "accepted": int(voice["accepted"]),
        "executor_429s": sum(_executor_429s(e) for e in executors),
    }


def _limits(per_second: float) -> dict[str, Any]:
    return {"voice_calls_per_minute": round(per_second * 60), "enabled": True}


def _executor_429s(executor: Process) -> int:
    try:
        text = httpx.get(executor.url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return -1
    sample = 'voicebus_executor_exotel_rate_limited_total{command_type="call.connect"}'
    value = metric_value(text, sample)
    return int(value or 0)


def _executor_env(limit: float, group: str) -> dict[str, str]:
    return {
        "EXOTEL_VOICE_CALLS_PER_MINUTE": str(round(limit * 60)),
        "EXECUTOR_GROUP_ID": group,
    }


async def _start_all(processes: list[Process]) -> None:
    await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))


async def _stop_all(processes: list[Process]) -> None:
    await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes))


async def _rate_figure(name: str, replicas: int, limit: float, factor: float) -> Figure:
    per_minute = round(limit * 60)
    async with bench_stack(SANDBOX_VOICE_CALLS_PER_MINUTE=str(per_minute)) as bench:
        group = f"bench-rate-{uuid.uuid4().hex[:6]}"
        executors = [bench.executor(**_executor_env(limit, group)) for _ in range(replicas)]
        try:
            await _start_all(executors)
            shares = await wait_for_shares(executors)
            figures = await _offered_run(bench, executors, limit=limit, offered=factor * limit)
        finally:
            await _stop_all(executors)
    ratio = figures["achieved_per_s"] / limit
    what = "one executor" if replicas == 1 else f"{replicas} replicas, one group"
    target = "0.95-1.0" if replicas == 1 else "0.9-1.0"
    return Figure(
        name,
        ratio,
        f"{'rate precision' if replicas == 1 else 'scale-out'}: achieved/L = {ratio:.3f}, "
        f"429s = {figures['rejected_429']} ({what}, L = {limit:g}/s, "
        f"{factor:g}L offered, {WINDOW_SECONDS} s; target {target}, 0 429s)",
        {
            "limit_per_s": limit,
            "offered_per_s": factor * limit,
            "achieved_per_s": round(figures["achieved_per_s"], 3),
            "rejected_429": figures["rejected_429"],
            "executor_429s": figures["executor_429s"],
            "max_per_second": figures["max_per_second"],
            "replicas": replicas,
            "shares": ", ".join(f"{s:.3f}" for s in shares),
            "partitions": PARTITIONS,
        },
    )


async def rate_precision(limit: float = 10.0, factor: float = 3.0) -> Figure:
    return await _rate_figure("rate", 1, limit, factor)


async def scale_out(limit: float = 10.0, factor: float = 3.0) -> Figure:
    return await _rate_figure("scaleout", 3, limit, factor)
