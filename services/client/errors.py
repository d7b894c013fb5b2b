"""The errors a caller of :mod:`services.client` can meet, each with a readable message."""

from __future__ import annotations

from collections.abc import Sequence


class VoicebusError(Exception):
    """Base of every error :mod:`services.client` raises."""


class KafkaUnavailable(VoicebusError):
    """Kafka could not be reached (bootstrap failed, or a request timed out)."""


class TopicsMissing(VoicebusError):
    """Topics voicebus uses do not exist yet (the executor creates them when it starts)."""

    def __init__(self, topics: Sequence[str]) -> None:
        self.topics = tuple(topics)
        super().__init__(
            f"topic(s) missing: {', '.join(self.topics)} "
            "(start the executor, or create them with `voicebus topics --create`)"
        )


class CommandNotValid(VoicebusError):
    """The command would not be executed: the same check the executor applies failed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class ResultTimeout(VoicebusError):
    """The command was published but its result did not arrive in time.

    The command may still be executed: the executor runs every command it can read, and its
    result will appear on the result topic (look for ``command_id``).
    """

    def __init__(self, command_id: str, timeout: float) -> None:
        self.command_id = command_id
        self.timeout = timeout
        super().__init__(f"no result for command {command_id!r} within {timeout:g}s")
