"""A command message as the executor received it, independent of the Kafka client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.catalog import COMMANDS, CommandSpec, spec_for


@dataclass(frozen=True)
class IncomingCommand:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    timestamp_ms: int | None

    @classmethod
    def from_record(cls, record: Any) -> IncomingCommand:
        headers = {}
        for name, raw in record.headers or ():
            headers[name] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=headers,
            timestamp_ms=record.timestamp if record.timestamp and record.timestamp > 0 else None,
        )

    @property
    def spec(self) -> CommandSpec | None:
        """The command type of this message's topic (contracts/catalog.py)."""
        return spec_for(self.topic)

    @property
    def ordering_key(self) -> str:
        """Commands with the same key run in order (the command table's ordering rule);
        keyless ones need no order."""
        if not self.key:
            return f"{self.topic}:{self.partition}:{self.offset}"
        spec = self.spec
        return spec.ordering_key(self.key) if spec else f"{self.topic}:{self.key.hex()}"

    def hold_seconds(self, ordering_window: float) -> float:
        """How long this command waits for an earlier one of its key on another topic."""
        spec = self.spec
        return ordering_window if spec is not None and spec.hold else 0.0

    @property
    def co_partitions(self) -> tuple[tuple[str, int], ...]:
        """The partitions of the other held topics with this partition's number: a call's
        commands there share its key, so they land on the same partition number."""
        spec = self.spec
        if spec is None or not spec.hold:
            return ()
        return tuple(
            (other.topic, self.partition)
            for other in COMMANDS
            if other.hold and other.topic != self.topic
        )

    @property
    def requested_at(self) -> datetime | None:
        return (
            datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
            if self.timestamp_ms is not None
            else None
        )

    @property
    def traceparent(self) -> str | None:
        return self.headers.get("traceparent")
