"""The ``voicebus`` command's exit codes (stable: scripts may rely on them)."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    """Accepted / done / every topic present."""
    FAILED = 1
    """The command was rejected or failed; a check found a problem; nothing matched."""
    USAGE = 2
    """Bad flags or arguments, an invalid command (nothing was published), no broker named."""
    TIMEOUT = 3
    """Published, but no result (or not enough facts) within ``--timeout``."""
    KAFKA_UNAVAILABLE = 4
    """Kafka could not be reached, or voicebus's topics do not exist."""
    INTERRUPTED = 130
    """Ctrl-C."""
