"""Run a voicebus service as a real child process in tests, with its output kept."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from services.stack.processes import ServiceProcess as _ServiceProcess

#: A service's own start (Python, imports, settings) before it does anything, on 2 busy cores.
START_ALLOWANCE_SECONDS = 15.0


class ServiceProcess(_ServiceProcess):
    """``python -m services.<name>`` with ``env``; ``.url`` is its HTTP base URL."""

    def __init__(self, name: str, env: dict[str, str], *, port: int | None = None) -> None:
        super().__init__(f"services.{name}", env, port=port)


@dataclass(frozen=True)
class Exited:
    """How a service that was expected to stop did: exit code (``None``: still running
    when the wait ended), seconds from its start, and its output."""

    service: str
    returncode: int | None
    seconds: float
    output: str


def until_exit(envs: Mapping[str, dict[str, str]], *, within: float) -> list[Exited]:
    """Start each service (``name`` → environment) at once and wait, ``within`` seconds in
    all, for each to exit by itself; then stop whatever still runs."""
    processes = {name: ServiceProcess(name, env) for name, env in envs.items()}
    started = time.monotonic()
    for process in processes.values():
        process.start(ready_path=None)
    exited = []
    try:
        for name, process in processes.items():
            assert process.process is not None
            left = max(within - (time.monotonic() - started), 0.1)
            try:
                code: int | None = process.process.wait(left)
            except subprocess.TimeoutExpired:
                code = None
            exited.append(Exited(name, code, time.monotonic() - started, process.output))
    finally:
        for process in processes.values():
            process.stop(5)
            process.cleanup()
    for one in exited:
        print(f"[exit] {one.service}: exit {one.returncode} after {one.seconds:.1f}s")
    return exited
