"""Write lanes that keep what they were given (the ledger's Kafka side, played in memory)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from services.executor.state.lanes import LaneClosed
from services.executor.state.records import Record


@dataclass
class RecordingLane:
    """``held``: outcomes handed over but not yet durable (``commit()`` makes them so)."""

    partition: int
    written: list[Record] = field(default_factory=list)
    hold_outcomes: bool = False
    held: list[Callable[[], None]] = field(default_factory=list)
    closed: bool = False
    atomic: bool = False

    async def write_now(self, records: list[Record]) -> None:
        self._check()
        self.written.extend(records)

    async def finish(
        self, records: list[Record], on_durable: Callable[[], None] | None = None
    ) -> None:
        self._check()
        self.written.extend(records)
        if on_durable is not None:
            if self.hold_outcomes:
                self.held.append(on_durable)
            else:
                on_durable()

    def commit(self) -> None:
        held, self.held = self.held, []
        for durable in held:
            durable()

    async def flush(self, final: Mapping[tuple[str, int], int] | None = None) -> None:
        self.commit()

    async def close(self) -> None:
        self.closed = True

    def _check(self) -> None:
        if self.closed:
            raise LaneClosed(f"partition {self.partition} closed")

    def topics(self) -> list[str]:
        return [r.topic for r in self.written]


@dataclass
class RecordingLanes:
    lanes: dict[int, RecordingLane] = field(default_factory=dict)
    hold_outcomes: bool = False

    async def acquired(self, partition: int, within: float) -> RecordingLane:
        return self.lane(partition)

    def lane(self, partition: int) -> RecordingLane:
        if partition not in self.lanes:
            self.lanes[partition] = RecordingLane(partition, hold_outcomes=self.hold_outcomes)
        return self.lanes[partition]
