"""An in-memory Outlet: the HTTP and service layers without Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka.errors import KafkaConnectionError

from contracts.status import CallStatusEvent
from services.ingress.sinks import DeadLetter, SinkUnavailable


@dataclass
class MemoryFacts:
    events: list[CallStatusEvent] = field(default_factory=list)
    fail: bool = False
    delay: float = 0.0

    async def put(self, event: CallStatusEvent) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise SinkUnavailable("call.status: KafkaTimeoutError")
        self.events.append(event)


@dataclass
class MemoryDeadLetters:
    letters: list[DeadLetter] = field(default_factory=list)
    fail: bool = False

    async def put(self, letter: DeadLetter) -> None:
        if self.fail:
            raise SinkUnavailable("call.status.dlq: KafkaTimeoutError")
        self.letters.append(letter)


@dataclass
class MemoryOutlet:
    memory_facts: MemoryFacts = field(default_factory=MemoryFacts)
    memory_dead_letters: MemoryDeadLetters = field(default_factory=MemoryDeadLetters)
    start_failures: int = 0
    started: int = 0
    stopped: int = 0

    @property
    def facts(self) -> MemoryFacts:
        return self.memory_facts

    @property
    def dead_letters(self) -> MemoryDeadLetters:
        return self.memory_dead_letters

    async def start(self) -> None:
        if self.start_failures:
            self.start_failures -= 1
            raise KafkaConnectionError("no broker")
        self.started += 1

    async def stop(self) -> None:
        self.stopped += 1

    @property
    def ready(self) -> bool:
        return self.started > 0

    def status(self) -> dict[str, object]:
        return {"kafka": "connected"}
