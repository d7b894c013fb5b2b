"""Run a voicebus service as a real child process in tests, with its output kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from services.common.embedded_broker import free_port


class ServiceProcess:
    """``python -m services.<name>`` with ``env``; ``.url`` is its HTTP base URL."""

    def __init__(self, name: str, env: dict[str, str], *, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.env = {**os.environ, **env, "HTTP_PORT": str(self.port), "HTTP_HOST": "127.0.0.1"}
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self._log = Path(tempfile.mkstemp(prefix=f"voicebus-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self._log.read_text(errors="replace")

    def start(self, *, ready_path: str = "/readyz", timeout: float = 60.0) -> ServiceProcess:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output[-4000:]}")
            try:
                if httpx.get(self.url + ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"{self.name} not ready within {timeout}s:\n{self.output[-4000:]}")

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
                process.wait(timeout)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
