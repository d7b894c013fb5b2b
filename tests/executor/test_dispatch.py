"""The dispatcher keeps per-key order, runs keys concurrently within a bound, and never
offers a commit position past an unfinished command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from services.executor.dispatch import KeyOrderedDispatcher, PartitionOffsets
from tests.support.progress import FakeProgress

TP = ("call.connect", 0)


def test_commit_position_is_the_lowest_unfinished_offset() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12):
        offsets.begin(offset)
    offsets.finish(11)
    offsets.finish(12)
    assert offsets.commit_position() == 10
    offsets.finish(10)
    assert offsets.commit_position() == 13


def test_empty_partition_offers_nothing_to_commit() -> None:
    assert PartitionOffsets().commit_position() is None


async def test_commands_with_one_key_run_in_arrival_order() -> None:
    dispatcher = KeyOrderedDispatcher(10)
    done: list[int] = []

    def work(n: int, delay: float):
        async def run() -> None:
            await asyncio.sleep(delay)
            done.append(n)

        return run

    for n, delay in enumerate([0.05, 0.0, 0.02]):
        assert await dispatcher.submit(TP, n, "call-A", work(n, delay))
    await dispatcher.close(5)
    assert done == [0, 1, 2]


async def test_different_keys_run_concurrently_up_to_the_bound() -> None:
    dispatcher = KeyOrderedDispatcher(3)
    running = 0
    peak = 0
    release = asyncio.Event()

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    for n in range(3):
        await dispatcher.submit(TP, n, f"key-{n}", work)
    fourth = asyncio.create_task(dispatcher.submit(TP, 3, "key-3", work))
    await asyncio.sleep(0.05)
    assert peak == 3
    assert not fourth.done(), "a full dispatcher must make the consumer wait (backpressure)"
    release.set()
    assert await asyncio.wait_for(fourth, 2)
    await dispatcher.close(5)
    assert dispatcher.in_flight == 0


async def test_a_slow_command_holds_the_commit_position_while_later_ones_finish() -> None:
    dispatcher = KeyOrderedDispatcher(10)
    slow = asyncio.Event()

    async def slow_work() -> None:
        await slow.wait()

    async def quick_work() -> None:
        return None

    await dispatcher.submit(TP, 5, "slow", slow_work)
    for offset in (6, 7, 8):
        await dispatcher.submit(TP, offset, f"quick-{offset}", quick_work)
    for _ in range(100):
        if dispatcher.in_flight == 1:
            break
        await asyncio.sleep(0.01)
    assert dispatcher.take_commits() == {TP: 5}
    slow.set()
    await dispatcher.close(5)
    assert dispatcher.positions() == {TP: 9}


async def test_failed_work_is_never_committed_past_and_stops_its_key() -> None:
    dispatcher = KeyOrderedDispatcher(10)
    ran: list[int] = []

    async def broken() -> None:
        raise RuntimeError("result not acknowledged")

    async def later() -> None:
        ran.append(2)

    await dispatcher.submit(TP, 1, "call-A", broken)
    await dispatcher.submit(TP, 2, "call-A", later)
    await dispatcher.close(1)
    assert ran == [], "a later command of the same call must not overtake a failed one"
    assert dispatcher.positions() == {TP: 1}


async def test_revoked_partition_takes_no_new_work_and_returns_its_safe_position() -> None:
    dispatcher = KeyOrderedDispatcher(10)
    dispatcher.assign([TP])
    finished = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0.02)
        finished.set()

    await dispatcher.submit(TP, 40, "k", work)
    positions = await dispatcher.revoke([TP], grace_seconds=2)
    assert finished.is_set(), "in-flight work finishes within the grace period"
    assert positions == {TP: 41}
    assert not await dispatcher.submit(TP, 41, "k", work)


async def test_closing_leaves_unfinished_work_uncommitted() -> None:
    dispatcher = KeyOrderedDispatcher(10)
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    async def quick() -> None:
        return None

    await dispatcher.submit(TP, 3, "stuck", stuck)
    await dispatcher.submit(TP, 4, "quick", quick)
    positions = await dispatcher.close(grace_seconds=0.1)
    assert positions == {TP: 3}


async def test_once_shutdown_begins_a_command_waiting_for_a_slot_is_not_started() -> None:
    dispatcher = KeyOrderedDispatcher(1)
    release = asyncio.Event()
    started: list[str] = []

    def work(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            started.append(name)
            await release.wait()

        return run

    assert await dispatcher.submit(TP, 0, "a", work("a"))
    waiting = asyncio.create_task(dispatcher.submit(TP, 1, "b", work("b")))
    await asyncio.sleep(0)  # "b" waits for the only slot
    dispatcher.stop_taking()
    release.set()
    assert not await asyncio.wait_for(waiting, 5), "not taken: left to the next owner"
    positions = await dispatcher.close(grace_seconds=5)
    assert started == ["a"]
    assert positions == {TP: 1}


def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        KeyOrderedDispatcher(0)


async def test_one_calls_commands_from_two_topics_run_in_publish_order() -> None:
    """lwb.action and leg.hangup of one call live on two partitions: the hold lets an
    earlier-published command that arrives later still run first."""
    dispatcher = KeyOrderedDispatcher(10)
    ran: list[str] = []

    def work(name: str):
        async def run() -> None:
            ran.append(name)

        return run

    hangup, lwb = ("leg.hangup", 0), ("lwb.action", 0)
    await dispatcher.submit(
        hangup, 7, "call-A", work("hangup"), timestamp_ms=3000, hold_seconds=0.2
    )
    await asyncio.sleep(0.05)
    await dispatcher.submit(lwb, 4, "call-A", work("listen"), timestamp_ms=1000, hold_seconds=0.2)
    await dispatcher.submit(lwb, 5, "call-A", work("barge"), timestamp_ms=2000, hold_seconds=0.2)
    await dispatcher.close(5)
    assert ran == ["listen", "barge", "hangup"]


async def test_offsets_of_one_partition_are_never_reordered_by_timestamp() -> None:
    dispatcher = KeyOrderedDispatcher(10)
    ran: list[int] = []

    def work(n: int):
        async def run() -> None:
            ran.append(n)

        return run

    # A producer with a skewed clock: later offset, earlier timestamp.
    await dispatcher.submit(TP, 1, "k", work(1), timestamp_ms=5000)
    await dispatcher.submit(TP, 2, "k", work(2), timestamp_ms=1000)
    await dispatcher.close(5)
    assert ran == [1, 2]


# ------------------------------------------------- cross-topic order from fetch progress

HANGUP, LWB = ("leg.hangup", 0), ("lwb.action", 0)
#: so long that a command finishing within the test's timeout was not held for it
LONG_HOLD = 60.0


def recorder(ran: list[str]) -> Callable[[str], Callable[[], Awaitable[None]]]:
    """``work(name)``: work that notes its name in ``ran`` when it runs."""

    def work(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            ran.append(name)

        return run

    return work


async def test_a_held_command_runs_at_once_when_the_other_topic_is_known_to_be_caught_up() -> None:
    progress = FakeProgress()
    progress.started(LWB, at=12)
    progress.fetched(HANGUP, end=8)
    progress.fetched(LWB, end=12)  # read with (or after) the answer that brought the hangup
    dispatcher = KeyOrderedDispatcher(10, progress=progress)
    ran: list[str] = []
    work = recorder(ran)

    await dispatcher.submit(
        HANGUP, 7, "call-A", work("hangup"), timestamp_ms=3000, hold_seconds=LONG_HOLD, after=[LWB]
    )
    await asyncio.wait_for(dispatcher.close(LONG_HOLD), 5)
    assert ran == ["hangup"]


async def test_a_held_command_waits_for_what_the_other_topic_still_has_then_runs_after_it() -> None:
    progress = FakeProgress()
    progress.started(LWB, at=4)
    progress.fetched(HANGUP, end=8)
    dispatcher = KeyOrderedDispatcher(10, progress=progress)
    ran: list[str] = []
    work = recorder(ran)

    await dispatcher.submit(
        HANGUP, 7, "call-A", work("hangup"), timestamp_ms=3000, hold_seconds=LONG_HOLD, after=[LWB]
    )
    progress.fetched(LWB, end=6)  # two commands there not yet taken by the dispatcher
    await asyncio.sleep(0.05)
    assert ran == [], "the hangup waits while lwb.action may still hold an earlier command"
    await dispatcher.submit(LWB, 4, "call-A", work("listen"), timestamp_ms=1000)
    await dispatcher.submit(LWB, 5, "call-A", work("barge"), timestamp_ms=2000)
    await asyncio.wait_for(dispatcher.close(LONG_HOLD), 5)
    assert ran == ["listen", "barge", "hangup"]


async def test_a_fetch_answer_older_than_the_command_says_nothing_about_the_other_topic() -> None:
    progress = FakeProgress()
    progress.started(LWB, at=4)
    progress.fetched(LWB, end=4)  # read before the hangup was fetched
    progress.fetched(HANGUP, end=8)
    dispatcher = KeyOrderedDispatcher(10, progress=progress)
    ran: list[str] = []

    await dispatcher.submit(
        HANGUP,
        7,
        "call-A",
        recorder(ran)("hangup"),
        timestamp_ms=3000,
        hold_seconds=0.2,
        after=[LWB],
    )
    await asyncio.sleep(0.05)
    assert ran == [], "held: only the ordering window lets it go"
    await asyncio.wait_for(dispatcher.close(5), 5)
    assert ran == ["hangup"]


async def test_a_later_published_command_taken_from_the_other_topic_releases_a_held_one() -> None:
    dispatcher = KeyOrderedDispatcher(10, progress=FakeProgress())
    ran: list[str] = []
    work = recorder(ran)

    await dispatcher.submit(LWB, 3, "call-B", work("other call"), timestamp_ms=5000)
    await dispatcher.submit(
        HANGUP, 7, "call-A", work("hangup"), timestamp_ms=3000, hold_seconds=LONG_HOLD, after=[LWB]
    )
    await asyncio.wait_for(dispatcher.close(LONG_HOLD), 5)
    assert ran == ["other call", "hangup"]


async def test_without_a_partition_to_wait_for_a_held_command_waits_the_window() -> None:
    progress = FakeProgress()
    progress.fetched(HANGUP, end=8)
    dispatcher = KeyOrderedDispatcher(10, progress=progress)
    ran: list[str] = []

    await dispatcher.submit(
        HANGUP, 7, "call-A", recorder(ran)("hangup"), timestamp_ms=3000, hold_seconds=0.2
    )
    await asyncio.sleep(0.05)
    assert ran == []
    await asyncio.wait_for(dispatcher.close(5), 5)
    assert ran == ["hangup"]
