"""A benchmark that ends early (SIGTERM from ``timeout``, an exception) stops the processes
it started instead of leaving them running as orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from bench.harness import REPO_ROOT
from services.common.processes import wait_until

#: a stand-in benchmark: one harness process started, then the bench ends as told
BENCH = textwrap.dedent(
    """
    import sys, time
    from bench.harness import Process, exit_on_sigterm
    exit_on_sigterm()
    child = Process("services.sandbox", {"SANDBOX_LOG_LEVEL": "WARNING"})
    child.start(ready_path=None)
    print(child.pid, flush=True)
    if sys.argv[1] == "raises":
        raise RuntimeError("the benchmark failed")
    time.sleep(120)
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(("ending", "exit_code"), [("sigterm", 128 + 15), ("raises", 1)])
def test_a_benchmark_that_ends_early_stops_the_processes_it_started(
    ending: str, exit_code: int
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", BENCH, ending],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as bench:
        assert bench.stdout is not None
        child = int(bench.stdout.readline())
        assert alive(child)
        if ending == "sigterm":
            bench.send_signal(signal.SIGTERM)
        assert bench.wait(30) == exit_code
    assert wait_until(lambda: not alive(child), timeout=10), f"pid {child} outlived its bench"
