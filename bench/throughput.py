"""Benchmarks a and b: commands/s of the executor against a baseline from the same run.

a. overhead: sandbox at zero latency, no limits; the executor vs the hand-written
   consume -> HTTP -> produce loop of :mod:`bench.baseline`, both with the same bound.
b. latency hiding: the sandbox adds 200 ms to every request; the executor vs the ideal
   ``bound / 0.2 s`` (every slot always busy waiting on Exotel).

Each contender runs as its own process against the same broker and sandbox: N commands
are published first, then the process starts, and throughput is taken from the result
records' timestamps (the first 5 % left out as start-up, the same for everyone).
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from dataclasses import dataclass

from bench.harness import (
    PARTITIONS,
    Bench,
    Process,
    ResultReader,
    bench_stack,
    commands,
    cpu_seconds,
    create_topics,
    publish,
)
from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT

BASELINE_COMMANDS = "bench.baseline.commands"
BASELINE_RESULTS = "bench.baseline.results"


@dataclass(frozen=True)
class Figure:
    name: str
    ratio: float
    line: str
    details: dict[str, float | int | str]


@dataclass(frozen=True)
class Run:
    per_second: float
    #: CPU milliseconds per command of the contender, and of the sandbox, between the
    #: first and the last result
    cpu_ms: float
    sandbox_cpu_ms: float


async def _measure(
    bench: Bench,
    process: Process,
    *,
    command_topic: str,
    result_topic: str,
    count: int,
    timeout: float,
) -> Run:
    run = f"b{uuid.uuid4().hex[:6]}"
    await publish(bench.bootstrap, commands(run, count), topic=command_topic)
    reader = await ResultReader(bench.bootstrap, result_topic, prefix=run + "-").start()
    sandbox_pid = bench.sandbox_pid()
    try:
        await asyncio.to_thread(process.start, ready_path=None)
        try:
            await reader.wait_for(1, timeout, [process])
            first = len(reader.seen)
            cpu0, sandbox0 = process.cpu_seconds(), cpu_seconds(sandbox_pid)
            await reader.wait_for(count, timeout, [process])
            cpu1, sandbox1 = process.cpu_seconds(), cpu_seconds(sandbox_pid)
        finally:
            await asyncio.to_thread(process.stop)
        done = max(1, count - first)
        return Run(
            per_second=reader.throughput(),
            cpu_ms=1000 * ((cpu1 or 0.0) - (cpu0 or 0.0)) / done,
            sandbox_cpu_ms=1000 * ((sandbox1 or 0.0) - (sandbox0 or 0.0)) / done,
        )
    finally:
        await reader.stop()


def executor_process(bench: Bench, group: str, bound: int, **extra: str) -> Process:
    return bench.executor(EXECUTOR_GROUP_ID=group, EXECUTOR_MAX_IN_FLIGHT=str(bound), **extra)


def baseline_process(bench: Bench, group: str, bound: int) -> Process:
    env = bench.executor_env(
        BASELINE_GROUP_ID=group,
        BASELINE_MAX_IN_FLIGHT=str(bound),
        BASELINE_COMMAND_TOPIC=BASELINE_COMMANDS,
        BASELINE_RESULT_TOPIC=BASELINE_RESULTS,
    )
    return Process("bench.baseline", env)


def _median(runs: list[Run], attribute: str) -> float:
    return float(statistics.median(getattr(run, attribute) for run in runs))


def _listed(runs: list[Run]) -> str:
    return ", ".join(f"{run.per_second:.0f}" for run in runs)


async def overhead(count: int = 2000, bound: int = 64, rounds: int = 3) -> Figure:
    """The ratio of the executor as deployed on this broker; where the broker has
    transactions, also the executor with ``EXECUTOR_TRANSACTIONS=off`` in the same rounds
    (its own figure beside the first), so the price of the transactions is measured
    against the same baseline on the same machine at the same time."""
    async with bench_stack(SANDBOX_RATE_LIMITS_ENABLED="false") as bench:
        await create_topics(bench.bootstrap, [BASELINE_COMMANDS, BASELINE_RESULTS])
        # One group for both executor modes: each run goes on from the offsets the run
        # before committed (transactionally or not), so it sees only its own commands.
        executor_group = f"bench-executor-{uuid.uuid4().hex[:6]}"
        baseline_group = f"bench-baseline-{uuid.uuid4().hex[:6]}"
        modes: dict[str, dict[str, str]] = {"deployed": {}} | (
            {"off": {"EXECUTOR_TRANSACTIONS": "off"}} if bench.transactions else {}
        )
        executor_runs: dict[str, list[Run]] = {mode: [] for mode in modes}
        baseline_runs: list[Run] = []
        for _ in range(rounds):  # alternate, so drift on the machine hits all alike
            baseline_runs.append(
                await _measure(
                    bench,
                    baseline_process(bench, baseline_group, bound),
                    command_topic=BASELINE_COMMANDS,
                    result_topic=BASELINE_RESULTS,
                    count=count,
                    timeout=60,
                )
            )
            for mode, extra in modes.items():
                executor_runs[mode].append(
                    await _measure(
                        bench,
                        executor_process(bench, executor_group, bound, **extra),
                        command_topic=CALL_CONNECT,
                        result_topic=CALL_CONNECT_RESULT,
                        count=count,
                        timeout=60,
                    )
                )
    deployed = executor_runs["deployed"]
    executor = _median(deployed, "per_second")
    baseline = _median(baseline_runs, "per_second")
    ratio = executor / baseline
    transactions = "transactions on" if bench.transactions else "no transactions"
    line = (
        f"overhead: executor/baseline = {ratio:.2f} "
        f"({executor:.0f} vs {baseline:.0f} commands/s, {transactions}, bound {bound}, "
        f"{count} commands x {rounds} rounds, medians; target >= 0.8)"
    )
    details: dict[str, float | int | str] = {
        "executor_per_s": round(executor, 1),
        "baseline_per_s": round(baseline, 1),
        "executor_rounds": _listed(deployed),
        "baseline_rounds": _listed(baseline_runs),
        "executor_cpu_ms_per_command": round(_median(deployed, "cpu_ms"), 2),
        "baseline_cpu_ms_per_command": round(_median(baseline_runs, "cpu_ms"), 2),
    }
    if "off" in executor_runs:
        off = executor_runs["off"]
        off_rate = _median(off, "per_second")
        line += f"; transactions off: {off_rate / baseline:.2f} ({off_rate:.0f} commands/s)"
        details |= {
            "off_ratio": round(off_rate / baseline, 3),
            "off_per_s": round(off_rate, 1),
            "off_rounds": _listed(off),
            "off_cpu_ms_per_command": round(_median(off, "cpu_ms"), 2),
        }
    every_run = [run for runs in executor_runs.values() for run in runs] + baseline_runs
    details |= {
        "sandbox_cpu_ms_per_command": round(_median(every_run, "sandbox_cpu_ms"), 2),
        "bound": bound,
        "commands": count,
        "partitions": PARTITIONS,
    }
    return Figure("overhead", ratio, line, details)


async def latency_hiding(
    count: int = 800,
    bound: int = 20,
    latency: float = 0.2,
    rounds: int = 2,
    saturated_bound: int = 40,
    saturated_count: int = 1200,
) -> Figure:
    """The ratio at ``bound`` (ideal ``bound / latency`` about half of what the machine
    does at zero latency, so the figure is about latency, not CPU), and one run at
    ``saturated_bound`` (ideal rate near the machine's capacity) for the record."""
    async with bench_stack(SANDBOX_RATE_LIMITS_ENABLED="false") as bench:
        bench.sandbox_admin("POST", "latency", {"seconds": latency})
        group = f"bench-executor-{uuid.uuid4().hex[:6]}"
        runs = [
            await _measure(
                bench,
                executor_process(bench, group, bound),
                command_topic=CALL_CONNECT,
                result_topic=CALL_CONNECT_RESULT,
                count=count,
                timeout=90,
            )
            for _ in range(rounds)
        ]
        saturated = await _measure(
            bench,
            executor_process(bench, group, saturated_bound),
            command_topic=CALL_CONNECT,
            result_topic=CALL_CONNECT_RESULT,
            count=saturated_count,
            timeout=90,
        )
    achieved = _median(runs, "per_second")
    ideal = bound / latency
    ratio = achieved / ideal
    saturated_ideal = saturated_bound / latency
    return Figure(
        "latency",
        ratio,
        f"latency hiding: executor/(bound/{latency}s) = {ratio:.2f} "
        f"({achieved:.0f} vs {ideal:.0f} commands/s, bound {bound}, "
        f"{count} commands x {rounds} rounds, median; target >= 0.8)",
        {
            "executor_per_s": round(achieved, 1),
            "ideal_per_s": round(ideal, 1),
            "rounds": _listed(runs),
            "executor_cpu_ms_per_command": round(_median(runs, "cpu_ms"), 2),
            "bound": bound,
            "latency_s": latency,
            "commands": count,
            f"at_bound_{saturated_bound}": (
                f"{saturated.per_second:.0f} vs {saturated_ideal:.0f} commands/s = "
                f"{saturated.per_second / saturated_ideal:.2f}"
            ),
        },
    )
