"""``python -m services.sandbox``: serve the sandbox until SIGTERM / SIGINT."""

from __future__ import annotations

import json
import logging
import signal
import sys
from types import FrameType

import uvicorn

from services.sandbox.app import create_app
from services.sandbox.settings import SandboxSettings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises the signal after its graceful stop: make that exit 0."""
    del signum, frame
    raise SystemExit(0)


def main() -> None:
    settings = SandboxSettings()
    configure_logging(settings.log_level)
    logging.getLogger("services.sandbox").info(
        "sandbox listening on http://%s:%d account_sid=%s",
        settings.host,
        settings.port,
        settings.account_sid,
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.Server(config).run()  # uvicorn handles SIGTERM/SIGINT: graceful stop


if __name__ == "__main__":
    main()
