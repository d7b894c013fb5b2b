"""``python -m bench.profile_ingress [seconds] [mode]``: where the ingress's time goes.

Starts the benchmark's broker and one ingress (as :mod:`bench.ingress` does), drives it
with wrk (32 connections, ``mode`` ``distinct`` or ``same``) and samples it with py-spy
(``py-spy record --format raw``, 250 Hz, every thread, idle frames left out) for
``seconds``. Prints the callbacks/s of the run, then the functions with the most samples
on the stack (inclusive) and at the top of it (self), as % of the samples. The raw
collapsed stacks are left in ``.run/profile-ingress.txt`` (for a flame graph tool).
py-spy needs ptrace (root, or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import sys
import tempfile
from pathlib import Path

from bench.harness import REPO_ROOT, Process, chosen_broker, create_topics, exit_on_sigterm
from bench.ingress import callback_path, ingress_env, run_wrk
from contracts.topics import CALL_STATUS, dlq

OUT = REPO_ROOT / ".run" / "profile-ingress.txt"


def summarise(path: Path, top: int = 30) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"--- {title}")
        lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in counter.most_common(top)]
    return "\n".join(lines)


async def profile(seconds: int, mode: str) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    OUT.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="voicebus-profile-") as scratch:
        async with chosen_broker() as broker:
            await create_topics(broker.bootstrap_servers, [CALL_STATUS, dlq(CALL_STATUS)])
            env = ingress_env(
                broker.bootstrap_servers, Path(scratch) / "spool", idempotence=broker.transactions
            )
            with Process("services.ingress", env) as ingress:
                await run_wrk(ingress, callback_path(), seconds=3, mode=mode)  # warm up
                record = await asyncio.create_subprocess_exec(
                    py_spy,
                    "record",
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--subprocesses",
                    "--nolineno",
                    "--duration",
                    str(seconds),
                    "--output",
                    str(OUT),
                    "--pid",
                    str(ingress.pid),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                run = await run_wrk(ingress, callback_path(), seconds=seconds + 1, mode=mode)
                await record.wait()
    print(
        f"{run.per_second:.0f} callbacks/s, p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
        f"{run.cpu_ms:.2f} ms CPU per callback"
    )
    print(summarise(OUT))


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    mode = sys.argv[2] if len(sys.argv) > 2 else "distinct"
    exit_on_sigterm()
    asyncio.run(profile(seconds, mode))


if __name__ == "__main__":
    main()
