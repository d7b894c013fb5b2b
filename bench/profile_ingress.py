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
import sys
import tempfile
from pathlib import Path

from bench.harness import REPO_ROOT, Process, chosen_broker, create_topics, exit_on_sigterm
from bench.ingress import callback_path, ingress_env, run_wrk
from bench.pyspy import recording, summarise
from contracts.topics import CALL_STATUS, dlq

OUT = REPO_ROOT / ".run" / "profile-ingress.txt"


async def profile(seconds: int, mode: str) -> None:
    OUT.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="voicebus-profile-") as scratch:
        async with chosen_broker() as broker:
            await create_topics(broker.bootstrap_servers, [CALL_STATUS, dlq(CALL_STATUS)])
            env = ingress_env(
                broker.bootstrap_servers, Path(scratch) / "spool", idempotence=broker.transactions
            )
            with Process("services.ingress", env) as ingress:
                await run_wrk(ingress, callback_path(), seconds=3, mode=mode)  # warm up
                async with recording(
                    ingress.pid or 0,
                    OUT,
                    rate=250,
                    options=("--subprocesses", "--duration", str(seconds)),
                ):
                    run = await run_wrk(ingress, callback_path(), seconds=seconds + 1, mode=mode)
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
