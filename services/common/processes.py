"""Child processes and loopback ports: the one helper every launcher builds on.

``ChildProcess`` starts a command with its output in a log file (or on this terminal),
stops it with SIGTERM and then SIGKILL, and shows the log's tail when something fails.
The Tansu and Apache Kafka launchers, the sandbox and the services run through it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(host: str, port: int) -> bool:
    """Whether a TCP connect to ``host:port`` succeeds now."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class ChildProcess:
    """One command run as a child of this process.

    ``log``: a file its stdout and stderr go to (a temporary one when ``keep_log`` and no
    path is given); with ``keep_log=False`` and no path the output goes to this terminal.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
        keep_log: bool = True,
    ) -> None:
        self.command = list(command)
        self.name = name
        self.env = dict(env) if env is not None else dict(os.environ)
        self.cwd = cwd
        self.log = log
        self._owns_log = False
        if self.log is None and keep_log:
            handle, path = tempfile.mkstemp(prefix=f"voicebus-{name}-", suffix=".log")
            os.close(handle)
            self.log, self._owns_log = Path(path), True
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.log is None:
            self.process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd)
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def output(self) -> str:
        """Everything the process wrote so far (empty when it writes to the terminal)."""
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait up to ``timeout`` s, then SIGKILL; the exit code."""
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

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def cleanup(self) -> None:
        """Remove the log file this object created."""
        if self._owns_log and self.log is not None:
            self.log.unlink(missing_ok=True)
