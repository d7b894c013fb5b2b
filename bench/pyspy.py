"""py-spy for the profiling scripts: sampling a process while a block runs, and a summary
of the collapsed stacks it wrote. py-spy needs ptrace (root, or CAP_SYS_PTRACE)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path


@contextlib.asynccontextmanager
async def recording(
    pid: int, out: Path, *, rate: int, options: tuple[str, ...] = ()
) -> AsyncIterator[None]:
    """``py-spy record`` of ``pid`` (raw collapsed stacks, no line numbers) into ``out``
    while the block runs; then SIGINT, on which py-spy writes what it sampled and exits
    (with ``--duration`` among ``options``, py-spy is waited for to end by itself)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    record = await asyncio.create_subprocess_exec(
        py_spy,
        *("record", "--format", "raw", "--rate", str(rate), "--nolineno", *options),
        *("--output", str(out), "--pid", str(pid)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        if "--duration" not in options and record.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                record.send_signal(signal.SIGINT)
        await record.wait()


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
