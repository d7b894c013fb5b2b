"""``python -m bench.restore_ab TREE [TREE ...]``: cold restores of the same history by
the executor code of several source trees, alternating, on one broker filled once.

The state benchmark's broker and history (:mod:`bench.state`: Apache Kafka, 12
partitions, N ``done`` entries, N from ``BENCH_RESTORE_ENTRIES``, default 1M), then for
each of ``BENCH_RESTORE_ROUNDS`` rounds (default 2) one executor per tree (``python -m
services.executor`` run from that tree, so it imports that tree's code; e.g. a
``git worktree`` of the commit before a change and the working tree after it) in a new
group with an empty state directory, each until ``/readyz`` says ready. Prints per start:
the ready time, the restore's seconds and records (``/readyz``), entries/s, RSS and the
process's CPU seconds when ready. One broker and one fill for every contender: what
differs between their figures is the code (and the machine's load at the time, printed).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.harness import exit_on_sigterm
from bench.state import executor_env, fill, rss_mb, state_broker
from services.common.processes import free_port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cold_start(tree: Path, bootstrap: str, entries: int, timeout: float = 900) -> str:
    """One executor run from ``tree`` restoring everything cold; its figures as a line."""
    state_dir = Path(tempfile.mkdtemp(prefix="bench-restore-ab-"))
    port = free_port()
    group = f"bench-restore-ab-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        **executor_env(bootstrap, group=group, state_dir=state_dir),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTHONPATH", None)
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.executor"],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the executor of {tree} exited ({process.returncode})")
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"the executor of {tree} was not ready in {timeout} s")
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                break
            time.sleep(0.2)
        ready = time.monotonic() - began
        body = response.json()
        rss, cpu = rss_mb(process.pid), cpu_seconds(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(state_dir, ignore_errors=True)
    totals = body.get("restored_since_start", {})
    seconds, records = float(totals.get("seconds", 0)), int(totals.get("records", 0))
    return (
        f"{tree}: ready {ready:.1f} s, restore {seconds:.1f} s, {records} records, "
        f"{entries / max(seconds, 1e-9):,.0f} entries/s, RSS {rss:.0f} MB, CPU {cpu:.1f} s "
        f"when ready, entries held {body.get('state', {}).get('entries')}, "
        f"load {os.getloadavg()[0]:.1f}"
    )


async def compare(trees: list[Path], entries: int, rounds: int) -> None:
    async with state_broker() as bootstrap:
        seconds = await fill(bootstrap, 0, entries)
        print(f"[restore-ab] {entries} entries filled in {seconds:.0f} s", flush=True)
        for number in range(1, rounds + 1):
            for tree in trees:
                line = await asyncio.to_thread(cold_start, tree, bootstrap, entries)
                print(f"[restore-ab] round {number}: {line}", flush=True)


def main() -> None:
    trees = [Path(t).resolve() for t in sys.argv[1:]]
    if not trees:
        sys.exit(__doc__)
    entries = int(os.environ.get("BENCH_RESTORE_ENTRIES", "1000000"))
    rounds = int(os.environ.get("BENCH_RESTORE_ROUNDS", "2"))
    exit_on_sigterm()
    asyncio.run(compare(trees, entries, rounds))


if __name__ == "__main__":
    main()
