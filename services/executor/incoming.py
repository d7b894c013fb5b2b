"""A command message as the executor received it, independent of the Kafka client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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
    def ordering_key(self) -> str:
        """Commands with the same key run in order; keyless ones need no order."""
        if self.key:
            return (
                f"{self.topic}:{self.key.hex()}" if self.topic == "call.connect" else self.key.hex()
            )
        return f"{self.topic}:{self.partition}:{self.offset}"

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
