"""Run a voicebus service as a child process: start it, wait until it is ready, stop it.

One implementation for ``make run`` (output to the terminal), the tests and the benchmarks
(output kept in a log file, shown when something goes wrong), built on
:class:`services.common.processes.ChildProcess`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from services.common.processes import ChildProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """``python -m <module>`` with ``env`` and its HTTP server on ``port`` (free if unset).

    ``keep_log``: write the output to a temporary file (``.output`` reads it); otherwise it
    goes to this process's stdout/stderr.
    """

    def __init__(
        self,
        module: str,
        env: Mapping[str, str],
        *,
        port: int | None = None,
        keep_log: bool = True,
    ) -> None:
        self.module = module
        self.name = module.rsplit(".", 1)[-1]
        self.port = port or free_port()
        child_env = {
            **os.environ,
            **env,
            "HTTP_HOST": env.get("HTTP_HOST", "127.0.0.1"),
            "HTTP_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        }
        child_env.pop("PYTEST_CURRENT_TEST", None)
        self.child = ChildProcess(
            [sys.executable, "-m", module],
            name=self.name,
            env=child_env,
            cwd=REPO_ROOT,
            keep_log=keep_log,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return self.child.env

    @property
    def log(self) -> Path | None:
        return self.child.log

    @property
    def output(self) -> str:
        return self.child.output

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.child.process

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def start(self, *, ready_path: str | None = "/readyz", timeout: float = 60.0) -> Self:
        self.child.start()
        if ready_path is not None:
            self.wait_ready(ready_path, timeout)
        return self

    def wait_ready(self, ready_path: str = "/readyz", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self.child.running():
                    code = self.child.returncode
                    raise RuntimeError(f"{self.name} exited ({code}):\n{self.output[-4000:]}")
                try:
                    if client.get(self.url + ready_path).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"{self.name} not ready within {timeout}s:\n{self.output[-4000:]}")

    def running(self) -> bool:
        return self.child.running()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the service finishes or leaves in-flight work uncommitted."""
        return self.child.stop(timeout)

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        self.child.kill()

    def signal(self, signum: int) -> None:
        self.child.signal(signum)

    def cleanup(self) -> None:
        self.child.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
