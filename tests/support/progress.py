"""A fake of the consumer's fetch progress (the dispatcher's ``PartitionProgress`` port):
what each partition's last fetch answer said, set by the test.

    progress = FakeProgress()
    progress.fetched(("lwb.action", 0), end=5)   # an answer read now: 5 records there
    progress.started(("lwb.action", 0), at=5)    # the consumer began reading at 5
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.executor.ports import FetchMark

TopicPartition = tuple[str, int]


@dataclass
class FakeProgress:
    #: the fake's clock: each answer read moves it on by one
    now_ms: int = 1000
    answers: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    starts: dict[TopicPartition, int] = field(default_factory=dict)

    def fetched(self, tp: TopicPartition, *, end: int) -> None:
        """A fetch answer carrying ``tp`` was read: its end offset is ``end``."""
        self.now_ms += 1
        self.answers[tp] = (self.now_ms, end)

    def started(self, tp: TopicPartition, *, at: int) -> None:
        self.starts[tp] = at

    def mark(self, tp: TopicPartition) -> FetchMark | None:
        answer = self.answers.get(tp)
        return FetchMark(tp, answer[0]) if answer is not None else None

    def end_offset(self, tp: TopicPartition, *, since: FetchMark) -> int | None:
        answer = self.answers.get(tp)
        if answer is None or answer[0] < since.at_ms:
            return None
        return answer[1]

    def start_offset(self, tp: TopicPartition) -> int | None:
        return self.starts.get(tp)
