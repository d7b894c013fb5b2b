"""Run a voicebus service as a child process: start it, wait until it is ready, stop it.

One implementation for ``make run`` (output to the terminal), the tests and the benchmarks
(output kept in a log file, shown when something goes wrong).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from services.common.processes import free_port

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
        self.env = {
            **os.environ,
            **env,
            "HTTP_HOST": env.get("HTTP_HOST", "127.0.0.1"),
            "HTTP_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self.log: Path | None = None
        if keep_log:
            handle, name = tempfile.mkstemp(prefix=f"voicebus-{self.name}-", suffix=".log")
            os.close(handle)
            self.log = Path(name)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, *, ready_path: str | None = "/readyz", timeout: float = 60.0) -> Self:
        command = [sys.executable, "-m", self.module]
        if self.log is None:
            self.process = subprocess.Popen(command, env=self.env, cwd=REPO_ROOT)
        else:
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    command, env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
                )
        if ready_path is not None:
            self.wait_ready(ready_path, timeout)
        return self

    def wait_ready(self, ready_path: str = "/readyz", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    code = self.process.returncode if self.process else None
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
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the service finishes or leaves in-flight work uncommitted."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def cleanup(self) -> None:
        if self.log is not None:
            self.log.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
