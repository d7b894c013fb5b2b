"""``python -m bench.profile_state [entries]``: where a cold restore's time goes.

Starts the state benchmark's broker (:mod:`bench.state`: Apache Kafka, 12 partitions),
fills the ledger and the command index with ``entries`` ``done`` entries (default 1M),
then starts one executor with an empty state directory and samples it with py-spy
(``py-spy record --format raw``, 100 Hz, every thread, idle frames left out) from its
start until ``/readyz`` says ready. Prints the restore's figures from ``/readyz``, then
the functions with the most samples on the stack (inclusive) and at the top of it (self).
The raw collapsed stacks are left in ``.run/profile-state.txt``. py-spy needs ptrace
(root, or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.harness import REPO_ROOT, Process, exit_on_sigterm
from bench.pyspy import recording, summarise
from bench.state import SIZES, executor_env, fill, readyz, rss_mb, state_broker

OUT = REPO_ROOT / ".run" / "profile-state.txt"


async def profile(entries: int) -> None:
    OUT.parent.mkdir(exist_ok=True)
    async with state_broker() as bootstrap:
        seconds = await fill(bootstrap, 0, entries)
        print(f"[profile] {entries} entries filled in {seconds:.1f} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="voicebus-profile-state-") as scratch:
            group = f"bench-profile-{uuid.uuid4().hex[:6]}"
            process = Process(
                "services.executor", executor_env(bootstrap, group=group, state_dir=Path(scratch))
            )
            began = time.monotonic()
            process.start(ready_path=None)
            try:
                async with recording(process.pid or 0, OUT, rate=100):
                    await asyncio.to_thread(process.wait_ready, timeout=900)
                    ready = time.monotonic() - began
                    body = readyz(process)
                    rss = rss_mb(process.pid or 0)
            finally:
                process.stop()
                process.cleanup()
    totals = body.get("restored_since_start", {})
    records, restore_seconds = int(totals.get("records", 0)), float(totals.get("seconds", 0))
    print(
        f"ready in {ready:.1f} s; restored {records} records in {restore_seconds:.1f} s "
        f"({records / max(restore_seconds, 1e-9):,.0f} records/s, "
        f"{entries / max(restore_seconds, 1e-9):,.0f} entries/s); RSS {rss:.0f} MB"
    )
    print(summarise(OUT, top=40))


def main() -> None:
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else SIZES[-1]
    exit_on_sigterm()
    asyncio.run(profile(entries))


if __name__ == "__main__":
    main()
