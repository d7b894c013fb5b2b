"""Fakes of the call watch's I/O for the broker-free tests: its metrics, clock, publisher
and the Kafka records it reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from services.executor.call_watch import FinaliseOutcome, PollOutcome

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeMetrics:
    polls: list[PollOutcome] = field(default_factory=list)
    recoveries: int = 0
    count: int = 0
    finalise_outcomes: list[FinaliseOutcome] = field(default_factory=list)
    pending: int = 0

    def polled(self, outcome: PollOutcome) -> None:
        self.polls.append(outcome)

    def recovered(self) -> None:
        self.recoveries += 1

    def watched(self, count: int) -> None:
        self.count = count

    def finalised(self, outcome: FinaliseOutcome) -> None:
        self.finalise_outcomes.append(outcome)

    def finalisations(self, count: int) -> None:
        self.pending = count


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Published:
    records: list[tuple[bytes, str, bytes, dict[str, str]]] = field(default_factory=list)

    async def __call__(self, value: bytes, topic: str, key: bytes, headers: dict[str, str]) -> None:
        self.records.append((value, topic, key, headers))


def record(topic: str, value: dict[str, Any], at: datetime, partition: int = 0) -> Any:
    body = json.dumps(value).encode()
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=0,
        timestamp=int(at.timestamp() * 1000),
        timestamp_type=0,
        key=str(value.get("call_sid")).encode(),
        value=body,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(body),
        headers=(),
    )


def accepted_result(call_sid: str, api: str | None = "v1", **extra: Any) -> dict[str, Any]:
    """A ``call.connect.result`` of an accepted call, as the executor publishes it."""
    return {
        "command_id": f"cmd-{call_sid}",
        "command_type": "call.connect",
        "outcome": "accepted",
        "call_sid": call_sid,
        "account": "default",
        "api": api,
        "attempts": 1,
        "completed_at": T0.isoformat(),
        **extra,
    }
