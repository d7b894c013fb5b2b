"""A partition's transactional lane: outcomes and offsets committed together, batched,
retried when a transaction fails, and given up when another replica took the partition;
its intents through a lane of their own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.executor.state.lanes import LaneClosed, SplitLane, TransactionalLane
from services.executor.state.records import Record


class Fenced(Exception):
    pass


@dataclass
class FakeTransactions:
    """An aiokafka transactional producer as the lane sees it; ``fail_commits`` commit
    attempts fail first, ``fail_sends`` records are not acknowledged first (aiokafka then
    fails the record's future only, not the transaction), ``lost_answers`` commit attempts
    commit and then fail (the answer lost on the way back), ``fenced`` makes every commit
    fail as fenced. A send's acknowledgement is the record's key, which ``is_committed``
    looks up."""

    fail_commits: int = 0
    fail_sends: int = 0
    hang_commits: int = 0
    lost_answers: int = 0
    fenced: bool = False
    committed: list[dict[str, Any]] = field(default_factory=list)
    aborted: int = 0
    stopped: int = 0
    _open: dict[str, Any] | None = None

    async def begin_transaction(self) -> None:
        self._open = {"records": [], "offsets": {}}

    async def send(self, record: Record) -> asyncio.Future[bytes | None]:
        assert self._open is not None
        self._open["records"].append(record.key)
        done: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        if self.fail_sends:
            self.fail_sends -= 1
            done.set_exception(ConnectionError("batch expired"))
        else:
            done.set_result(record.key)
        return done

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        assert self._open is not None
        self._open["offsets"].update(offsets)

    async def commit_transaction(self) -> None:
        if self.fenced:
            raise Fenced
        if self.hang_commits:
            self.hang_commits -= 1
            await asyncio.Event().wait()  # a coordinator that never answers
        if self.fail_commits:
            self.fail_commits -= 1
            raise ConnectionError("broker gone")
        assert self._open is not None
        self.committed.append(self._open)
        self._open = None
        if self.lost_answers:
            self.lost_answers -= 1
            raise ConnectionError("connection reset before the answer")

    async def is_committed(self, ack: bytes | None) -> bool:
        return any(ack in transaction["records"] for transaction in self.committed)

    async def abort_transaction(self) -> None:
        self.aborted += 1
        self._open = None

    async def stop(self) -> None:
        self.stopped += 1
        self._open = None


def record(key: str) -> Record:
    return Record("call.connect.result", None, key.encode(), b"{}", [])


def lane_on(
    producer: FakeTransactions, positions: dict[tuple[str, int], int], **options: Any
) -> TransactionalLane:
    async def reopen() -> FakeTransactions:
        return producer  # the same fake plays the new producer of the same transactional id

    return TransactionalLane(
        0,
        producer=producer,
        open_producer=reopen,
        positions=lambda: positions,
        group_id="voicebus-executor",
        offset_type=lambda topic, partition: (topic, partition),
        is_fenced=lambda exc: isinstance(exc, Fenced),
        is_committed=producer.is_committed,
        retry_seconds=0.001,
        **options,
    )


async def settled(lane: TransactionalLane) -> None:
    await lane.flush()


async def test_an_outcome_and_the_offset_past_its_command_commit_in_one_transaction() -> None:
    producer = FakeTransactions()
    positions = {("call.connect", 0): 0}
    lane = lane_on(producer, positions)
    durable: list[str] = []
    await lane.finish([record("a")], on_durable=lambda: durable.append("a"))
    positions[("call.connect", 0)] = 1  # the command counts as finished once handed over
    await settled(lane)
    assert producer.committed[0] == {"records": [b"a"], "offsets": {("call.connect", 0): 1}}
    assert durable == ["a"]
    await lane.close()


async def test_outcomes_queued_together_share_one_transaction() -> None:
    producer = FakeTransactions()
    lane = lane_on(producer, {})
    for key in "abc":
        await lane.finish([record(key)])
    await settled(lane)
    assert [t["records"] for t in producer.committed] == [[b"a", b"b", b"c"]]
    await lane.close()


async def test_an_intent_returns_only_once_its_transaction_committed() -> None:
    producer = FakeTransactions(fail_commits=2)
    lane = lane_on(producer, {})
    await lane.write_now([record("intent")])
    assert producer.committed == [{"records": [b"intent"], "offsets": {}}]
    # each failed attempt's producer was replaced (which aborts what it left open), then
    # the same content was tried again
    assert producer.stopped == 2
    await lane.close()


async def test_a_record_not_acknowledged_is_never_committed_without_it() -> None:
    producer = FakeTransactions(fail_sends=1)
    positions = {("call.connect", 0): 1}
    lane = lane_on(producer, positions)
    await lane.finish([record("outcome"), record("index")])
    await settled(lane)
    # the attempt whose first record failed was not committed (its producer was replaced,
    # which aborts it); the retry committed both records with the offset
    assert producer.committed[0] == {
        "records": [b"outcome", b"index"],
        "offsets": {("call.connect", 0): 1},
    }
    assert [t["records"] for t in producer.committed[1:] if t["records"]] == []
    assert producer.stopped == 1
    await lane.close()


async def test_an_intents_transaction_leaves_the_offsets_to_the_outcomes_one() -> None:
    producer = FakeTransactions()
    positions = {("call.connect", 0): 4}
    lane = lane_on(producer, positions)
    await lane.write_now([record("intent")])
    await lane.finish([record("outcome")])
    await settled(lane)
    assert producer.committed == [
        {"records": [b"intent"], "offsets": {}},
        {"records": [b"outcome"], "offsets": {("call.connect", 0): 4}},
    ]
    await lane.close()


async def test_a_transaction_that_never_ends_is_given_up_and_tried_again() -> None:
    producer = FakeTransactions(hang_commits=1)
    lane = lane_on(producer, {}, transaction_timeout=0.05)
    await lane.write_now([record("intent")])
    assert producer.committed == [{"records": [b"intent"], "offsets": {}}]
    assert producer.stopped == 1
    await lane.close()


async def test_a_commit_whose_answer_was_lost_is_found_committed_and_not_sent_again() -> None:
    producer = FakeTransactions(lost_answers=1)
    lane = lane_on(producer, {("call.connect", 0): 1})
    durable: list[str] = []
    await lane.finish([record("outcome")], on_durable=lambda: durable.append("outcome"))
    await settled(lane)
    assert [t["records"] for t in producer.committed] == [[b"outcome"]]
    assert durable == ["outcome"]
    await lane.close()


async def test_a_commit_that_failed_for_certain_is_tried_again_with_the_same_records() -> None:
    producer = FakeTransactions(fail_commits=1)
    lane = lane_on(producer, {})
    await lane.write_now([record("intent")])
    # the failed attempt was looked for first (not there), then sent again, once
    assert [t["records"] for t in producer.committed] == [[b"intent"]]
    await lane.close()


async def test_a_partition_taken_over_closes_the_lane_and_fails_what_waits() -> None:
    producer = FakeTransactions(fenced=True)
    lane = lane_on(producer, {})
    with pytest.raises(LaneClosed):
        await lane.write_now([record("intent")])
    with pytest.raises(LaneClosed):
        await lane.finish([record("later")])
    assert producer.committed == []
    await lane.close()


async def test_revocation_commits_the_final_positions_it_is_given() -> None:
    producer = FakeTransactions()
    lane = lane_on(producer, {})  # the dispatcher no longer tracks the partition
    await lane.flush({("lwb.action", 0): 42})
    assert producer.committed == [{"records": [], "offsets": {("lwb.action", 0): 42}}]
    await lane.close()


async def test_an_intent_does_not_wait_for_an_outcome_transaction_in_progress() -> None:
    intents, outcomes = FakeTransactions(), FakeTransactions(hang_commits=1)
    lane = SplitLane(
        intents=lane_on(intents, {}),
        outcomes=lane_on(outcomes, {("call.connect", 0): 3}, transaction_timeout=5.0),
    )
    await lane.finish([record("outcome")])
    await asyncio.sleep(0)  # the outcomes' transaction starts and its commit hangs
    async with asyncio.timeout(1.0):
        await lane.write_now([record("intent")])
    assert intents.committed == [{"records": [b"intent"], "offsets": {}}]
    assert outcomes.committed == []
    await lane.close()


async def test_outcomes_and_offsets_go_through_the_outcomes_lane_only() -> None:
    intents, outcomes = FakeTransactions(), FakeTransactions()
    positions = {("call.connect", 0): 7}
    lane = SplitLane(intents=lane_on(intents, {}), outcomes=lane_on(outcomes, positions))
    await lane.write_now([record("intent")])
    await lane.finish([record("outcome")])
    await lane.flush({("lwb.action", 0): 2})
    assert intents.committed == [{"records": [b"intent"], "offsets": {}}]
    assert outcomes.committed == [
        {"records": [b"outcome"], "offsets": {("call.connect", 0): 7, ("lwb.action", 0): 2}}
    ]
    await lane.close()
