"""The log of every Exotel API request the sandbox received, for tests to inspect."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.sandbox.clock import iso


@dataclass
class RequestRecord:
    seq: int
    method: str
    path: str
    query: dict[str, Any]
    at: datetime
    content_type: str | None = None
    form: dict[str, Any] | None = None
    json: Any = None
    status: int | None = None
    api: str | None = None
    family: str | None = None
    call_sid: str | None = None
    leg_sid: str | None = None
    command_id: str | None = None
    fault: str | None = None
    answered_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "content_type": self.content_type,
            "form": self.form,
            "json": self.json,
            "status": self.status,
            "at": iso(self.at),
            "answered_at": None if self.answered_at is None else iso(self.answered_at),
            "api": self.api,
            "family": self.family,
            "call_sid": self.call_sid,
            "leg_sid": self.leg_sid,
            "command_id": self.command_id,
            "fault": self.fault,
        }


class RequestLog:
    """Arrival-ordered, bounded."""

    def __init__(self, size: int) -> None:
        self._items: deque[RequestRecord] = deque(maxlen=size)
        self._seq = 0

    def new(self, method: str, path: str, query: dict[str, Any], at: datetime) -> RequestRecord:
        self._seq += 1
        record = RequestRecord(seq=self._seq, method=method, path=path, query=query, at=at)
        self._items.append(record)
        return record

    def entries(self, *, since: int = 0, call_sid: str | None = None) -> list[dict[str, Any]]:
        return [
            record.as_dict()
            for record in self._items
            if record.seq > since and (call_sid is None or record.call_sid == call_sid)
        ]

    def clear(self) -> None:
        self._items.clear()
