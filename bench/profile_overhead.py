"""``python -m bench.profile_overhead [count] [on|off] [rounds]``: where the executor's CPU
per command goes in the overhead benchmark.

The overhead benchmark's stack (:func:`bench.harness.bench_stack`: the chosen broker, the
sandbox at zero latency without limits), then ``rounds`` rounds (default 2) of the
baseline and of one executor (``EXECUTOR_TRANSACTIONS`` ``on``, the default where the
broker has them, or ``off``), ``count`` pre-published ``call.connect`` each (default
2000). Each round prints commands/s and CPU ms per command of both; py-spy samples the
executor of the last round (``py-spy record --format raw``, 50 Hz, non-blocking, every
thread, idle frames left out) from its first result to its last. Prints the functions
with the most samples on the stack (inclusive) and at its top (self); the raw collapsed
stacks are left in ``.run/profile-overhead.txt``. py-spy needs ptrace (root, or
CAP_SYS_PTRACE).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid

from bench.harness import (
    REPO_ROOT,
    Process,
    ResultReader,
    bench_stack,
    commands,
    create_topics,
    exit_on_sigterm,
    publish,
)
from bench.pyspy import recording, summarise
from bench.throughput import (
    BASELINE_COMMANDS,
    BASELINE_RESULTS,
    baseline_process,
    executor_process,
)
from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT

OUT = REPO_ROOT / ".run" / "profile-overhead.txt"


async def _run(
    process: Process,
    bootstrap: str,
    *,
    command_topic: str,
    result_topic: str,
    count: int,
    spy: bool,
) -> tuple[float, float]:
    """commands/s and CPU ms per command of one contender's run of ``count`` commands."""
    run = f"p{uuid.uuid4().hex[:6]}"
    await publish(bootstrap, commands(run, count), topic=command_topic)
    reader = await ResultReader(bootstrap, result_topic, prefix=run + "-").start()
    try:
        await asyncio.to_thread(process.start, ready_path=None)
        try:
            await reader.wait_for(1, 60, [process])
            first = len(reader.seen)
            sampled = (
                recording(process.pid or 0, OUT, rate=50, options=("--nonblocking",))
                if spy
                else contextlib.nullcontext()
            )
            async with sampled:
                cpu0 = process.cpu_seconds() or 0.0
                await reader.wait_for(count, 90, [process])
                cpu1 = process.cpu_seconds() or 0.0
        finally:
            await asyncio.to_thread(process.stop)
            process.cleanup()
    finally:
        await reader.stop()
    return reader.throughput(), 1000 * (cpu1 - cpu0) / max(1, count - first)


async def profile(count: int, mode: str, rounds: int) -> None:
    OUT.parent.mkdir(exist_ok=True)
    async with bench_stack(SANDBOX_RATE_LIMITS_ENABLED="false") as bench:
        await create_topics(bench.bootstrap, [BASELINE_COMMANDS, BASELINE_RESULTS])
        executor_group = f"bench-executor-{uuid.uuid4().hex[:6]}"
        baseline_group = f"bench-baseline-{uuid.uuid4().hex[:6]}"
        extra = {"EXECUTOR_TRANSACTIONS": "off"} if mode == "off" else {}
        for index in range(rounds):
            base = await _run(
                baseline_process(bench, baseline_group, 64),
                bench.bootstrap,
                command_topic=BASELINE_COMMANDS,
                result_topic=BASELINE_RESULTS,
                count=count,
                spy=False,
            )
            executor = await _run(
                executor_process(bench, executor_group, 64, **extra),
                bench.bootstrap,
                command_topic=CALL_CONNECT,
                result_topic=CALL_CONNECT_RESULT,
                count=count,
                spy=index == rounds - 1,
            )
            print(
                f"round {index + 1}: executor ({mode}) {executor[0]:.0f}/s "
                f"{executor[1]:.2f} ms CPU/command; baseline {base[0]:.0f}/s "
                f"{base[1]:.2f} ms; ratio {executor[0] / base[0]:.2f}",
                flush=True,
            )
    print(summarise(OUT, top=60))


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    mode = sys.argv[2] if len(sys.argv) > 2 else "on"
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    exit_on_sigterm()
    asyncio.run(profile(count, mode, rounds))


if __name__ == "__main__":
    main()
