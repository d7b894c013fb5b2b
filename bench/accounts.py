"""Many accounts through one executor: each held at its own limit, none delaying another.

50 Exotel accounts (``default`` from the environment, 49 more from an accounts file), each
limited to L = 200 voice requests per minute by the executor and by the sandbox (its own
sliding window per account, ``SANDBOX_EXTRA_ACCOUNTS``). One executor, default settings.
Every account is offered 1.1 L of ``call.connect`` commands for the run, except one, the
*hot* account, offered 3 L (a backlog that only grows: it waits for its rate slots the
whole run).

Figures, over the 30 whole seconds after a 5 s ramp (the sandbox's request log, accepted
connect requests per account): achieved / L of the lowest account and of the hot one
(target: every account >= 0.95), the sandbox's 429 count (target 0), and publish -> result
latency of the other accounts' commands, p50 / p99: were they delayed by the hot account's
backlog, they would queue behind it for seconds. The baseline is the limit itself (each
account's ideal is L). Three runs (:data:`RUNS`): as deployed (transactions on), without
transactions, and without parking (``EXECUTOR_MAX_RATE_WAITING=0``: a command waiting for
its rate slot keeps its dispatcher slot, as before the head-of-line fix).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.e2e import percentile
from bench.harness import Bench, Process, ResultReader, bench_stack, connect_command
from bench.throughput import Figure
from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT

ACCOUNTS = 50
PER_MINUTE = 200
OFFERED = 1.1
HOT_OFFERED = 3.0
RAMP_SECONDS = 5
WINDOW_SECONDS = 30
HOT = "acct49"
RUN_SECONDS = RAMP_SECONDS + WINDOW_SECONDS + 3


def _names() -> list[str]:
    return ["default", *(f"acct{n:02d}" for n in range(1, ACCOUNTS))]


def _sandbox_accounts() -> str:
    """``sid:key:token;...`` of every account but the default one."""
    return ";".join(f"sid-{name}:key-{name}:token-{name}" for name in _names()[1:])


def _accounts_file(bench: Bench, directory: Path) -> Path:
    lines = []
    for name in _names()[1:]:
        lines += [
            f"[accounts.{name}]",
            f'account_sid = "sid-{name}"',
            f'api_key = "key-{name}"',
            f'api_token = "token-{name}"',
            f'base_url = "{bench.sandbox.base_url}"',
            f'ccm_base_url = "{bench.sandbox.base_url}"',
            f"voice_calls_per_minute = {PER_MINUTE}",
            "",
        ]
    path = directory / "accounts.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _schedule(run: str, seconds: float) -> list[tuple[float, str, dict[str, Any]]]:
    """(send at, key, command) for the whole run, every account evenly spaced."""
    items: list[tuple[float, str, dict[str, Any]]] = []
    index = 0
    for position, name in enumerate(_names()):
        per_second = PER_MINUTE / 60 * (HOT_OFFERED if name == HOT else OFFERED)
        count = int(per_second * seconds)
        offset = position / ACCOUNTS / per_second  # accounts interleaved, not in step
        for n in range(count):
            key, command = connect_command(run, index)
            command["account"] = name
            items.append((offset + n / per_second, key, command))
            index += 1
    items.sort(key=lambda item: item[0])
    return items


async def _publish(
    bootstrap: str, items: list[tuple[float, str, dict[str, Any]]]
) -> dict[str, int]:
    """Send each command at its time; returns command id -> publish timestamp (ms)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False
    )
    await producer.start()
    stamps: dict[str, int] = {}
    started = time.monotonic()
    try:
        pending = []
        for at, key, command in items:
            delay = started + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            stamp = int(time.time() * 1000)
            stamps[command["command_id"]] = stamp
            pending.append(
                await producer.send(
                    CALL_CONNECT, json.dumps(command).encode(), key=key.encode(), timestamp_ms=stamp
                )
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return stamps


def _accepted_per_account(requests: list[dict[str, Any]], start: float, end: float) -> Counter[str]:
    """Accepted connect requests per account sid whose arrival is in [start, end)."""
    counts: Counter[str] = Counter()
    for request in requests:
        if request["status"] != 200 or not request["path"].endswith("/Calls/connect.json"):
            continue
        at = datetime.fromisoformat(request["at"]).timestamp()
        if start <= at < end:
            counts[request["path"].split("/Accounts/", 1)[1].split("/", 1)[0]] += 1
    return counts


#: (name, EXECUTOR_TRANSACTIONS, EXECUTOR_MAX_RATE_WAITING): as deployed, without
#: transactions, and without parking (a command waiting for its rate slot keeps its slot)
RUNS = (("on", "on", "1000"), ("off", "off", "1000"), ("on, no parking", "on", "0"))


async def many_accounts() -> Figure:
    """Each run on a fresh broker and sandbox."""
    runs: dict[str, tuple[dict[str, Any], str]] = {}
    for name, transactions, rate_waiting in RUNS:
        async with bench_stack(
            SANDBOX_EXTRA_ACCOUNTS=_sandbox_accounts(),
            SANDBOX_VOICE_CALLS_PER_MINUTE=str(PER_MINUTE),
        ) as bench:
            if transactions == "on" and not bench.transactions:
                continue  # a broker without transactions (Tansu): the "off" run only
            with tempfile.TemporaryDirectory(prefix="bench-accounts-") as directory:
                executor = bench.executor(
                    EXOTEL_ACCOUNTS_FILE=str(_accounts_file(bench, Path(directory))),
                    EXOTEL_VOICE_CALLS_PER_MINUTE=str(PER_MINUTE),
                    EXECUTOR_TRANSACTIONS=transactions,
                    EXECUTOR_MAX_RATE_WAITING=rate_waiting,
                    EXECUTOR_CALL_WATCH_ENABLED="false",
                    EXECUTOR_CALL_DETAILS_ENABLED="false",
                )
                measured = await _measure(bench, executor, RUN_SECONDS)
                runs[name] = (measured, bench.sandbox.account_sid)
    return _figure(runs)


async def _measure(bench: Bench, executor: Process, run_seconds: float) -> dict[str, Any]:
    run = f"a{uuid.uuid4().hex[:6]}"
    reader = await ResultReader(bench.bootstrap, CALL_CONNECT_RESULT, prefix=run).start()
    try:
        await asyncio.to_thread(executor.start)
        try:
            await _warm(bench, executor)
            await asyncio.to_thread(bench.reset_sandbox)
            began = time.time()
            items = _schedule(run, run_seconds)
            stamps = await _publish(bench.bootstrap, items)
            await asyncio.sleep(1.0)
            stats = await asyncio.to_thread(bench.rate_stats)
            requests = await bench.sandbox.control.requests_async()
            await bench.sandbox.control.aclose()
        finally:
            await asyncio.to_thread(executor.stop)
        results = {cid: stamps_[0] for cid, stamps_ in reader.seen.items()}
    finally:
        await reader.stop()
    start = began + RAMP_SECONDS
    counts = _accepted_per_account(requests, start, start + WINDOW_SECONDS)
    account_of = {command["command_id"]: command["account"] for _, _, command in items}
    latency: dict[str, list[float]] = {"hot": [], "others": []}
    for command_id, published in stamps.items():
        done = results.get(command_id)
        if done is None or not start * 1000 <= published < (start + WINDOW_SECONDS) * 1000:
            continue
        group = "hot" if account_of[command_id] == HOT else "others"
        latency[group].append(done - published)
    return {
        "counts": counts,
        "rejected_429": int(stats["rejected_429_total"]),
        "latency": latency,
        "results": len(results),
        "published": len(stamps),
    }


async def _warm(bench: Bench, executor: Process) -> None:
    """A command per account first: connections, lanes and the consumer are up."""
    run = f"w{uuid.uuid4().hex[:6]}"
    reader = await ResultReader(bench.bootstrap, CALL_CONNECT_RESULT, prefix=run).start()
    try:
        items = []
        for index, name in enumerate(_names()):
            key, command = connect_command(run, index)
            command["account"] = name
            items.append((0.0, key, command))
        await _publish(bench.bootstrap, items)
        await reader.wait_for(len(items), 60, [executor])
    finally:
        await reader.stop()


def _achieved(figures: dict[str, Any], default_sid: str) -> dict[str, float]:
    """achieved / L per account name."""
    limit = PER_MINUTE / 60
    counts: Counter[str] = figures["counts"]
    return {
        name: counts.get(default_sid if name == "default" else f"sid-{name}", 0)
        / WINDOW_SECONDS
        / limit
        for name in _names()
    }


def _figure(runs: dict[str, tuple[dict[str, Any], str]]) -> Figure:
    details: dict[str, float | int | str] = {"needed_per_s": round(ACCOUNTS * PER_MINUTE / 60, 1)}
    lines = {}
    for mode, (figures, default_sid) in runs.items():
        achieved = _achieved(figures, default_sid)
        lowest_name = min(achieved, key=lambda n: achieved[n])
        others = figures["latency"]["others"]
        total = sum(figures["counts"].values()) / WINDOW_SECONDS
        lines[mode] = (
            f"{mode}: lowest account {achieved[lowest_name]:.3f} ({lowest_name}), "
            f"hot {achieved[HOT]:.3f}, 429s = {figures['rejected_429']}, {total:.0f} requests/s, "
            f"other accounts' publish->result p50 {percentile(others, 0.5):.0f} ms "
            f"p99 {percentile(others, 0.99):.0f} ms"
        )
        details |= {
            f"tx {mode} lowest": round(achieved[lowest_name], 3),
            f"tx {mode} median_account": round(sorted(achieved.values())[ACCOUNTS // 2], 3),
            f"tx {mode} hot_account": round(achieved[HOT], 3),
            f"tx {mode} accepted_per_s": round(total, 1),
            f"tx {mode} rejected_429": figures["rejected_429"],
            f"tx {mode} others_result_p50_ms": round(percentile(others, 0.5), 1),
            f"tx {mode} others_result_p99_ms": round(percentile(others, 0.99), 1),
            f"tx {mode} hot_result_p50_ms": round(percentile(figures["latency"]["hot"], 0.5), 1),
            f"tx {mode} published": figures["published"],
            f"tx {mode} results": figures["results"],
        }
    headline = "on" if "on" in runs else "off"
    return Figure(
        "accounts",
        float(details[f"tx {headline} lowest"]),
        f"accounts: achieved/L of the lowest of {ACCOUNTS} accounts x {PER_MINUTE}/min through "
        f"one executor (one hot account offered {HOT_OFFERED:g} L, the rest {OFFERED:g} L; "
        f"target >= 0.95 each, 0 429s): " + "; ".join(lines.values()),
        details,
    )
