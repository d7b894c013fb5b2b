"""Run a voicebus service as a real child process in tests, with its output kept."""

from __future__ import annotations

from services.stack.processes import ServiceProcess as _ServiceProcess


class ServiceProcess(_ServiceProcess):
    """``python -m services.<name>`` with ``env``; ``.url`` is its HTTP base URL."""

    def __init__(self, name: str, env: dict[str, str], *, port: int | None = None) -> None:
        super().__init__(f"services.{name}", env, port=port)
