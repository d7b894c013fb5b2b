"""A command waiting for its account's rate slot gives its dispatcher slot to others: a
throttled account's commands never keep another account's waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.executor.dispatch import KeyOrderedDispatcher
from services.executor.pacing import PacedThrottle
from services.exotel.accounts import ApiFamily
from services.exotel.limiter import RateLimiter

TP = ("call.connect", 0)
#: one request every 0.5 s for the hot account, no limit to speak of for the others
LIMITS: dict[tuple[str, ApiFamily], float] = {("hot", "voice"): 2.0, ("cold", "voice"): 1000.0}


def paced(dispatcher: KeyOrderedDispatcher) -> PacedThrottle:
    return PacedThrottle(RateLimiter(LIMITS, headroom=0.0), dispatcher.parked_while)


async def test_a_throttled_accounts_backlog_does_not_delay_another_accounts_command() -> None:
    dispatcher = KeyOrderedDispatcher(2, max_parked=100)
    throttle = paced(dispatcher)
    sent: list[str] = []
    cold_sent = asyncio.Event()

    def command(account: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await throttle.acquire(account, "voice")
            sent.append(account)
            if account == "cold":
                cold_sent.set()

        return run

    for offset in range(4):  # more than the dispatcher has slots, all waiting for the limit
        assert await asyncio.wait_for(
            dispatcher.submit(TP, offset, f"hot-{offset}", command("hot")), 2
        ), "the consumer is not held up by commands waiting for their rate slot"
    await dispatcher.submit(TP, 4, "cold-0", command("cold"))

    await asyncio.wait_for(cold_sent.wait(), 5)
    assert sent.count("hot") < 4, "the cold account's command went before the hot backlog"
    assert dispatcher.parked >= 1
    await asyncio.wait_for(dispatcher.close(30), 30)
    assert sorted(sent) == ["cold", "hot", "hot", "hot", "hot"]
    assert dispatcher.in_flight == 0
    assert dispatcher.parked == 0


async def test_with_no_room_to_park_a_command_waits_in_its_slot_and_the_consumer_waits() -> None:
    dispatcher = KeyOrderedDispatcher(1, max_parked=0)
    throttle = paced(dispatcher)
    await throttle.acquire("hot", "voice")  # the hot lane's next grant is 0.5 s away

    async def hot() -> None:
        await throttle.acquire("hot", "voice")

    async def cold() -> None:
        await throttle.acquire("cold", "voice")

    await dispatcher.submit(TP, 0, "hot-0", hot)
    second = asyncio.create_task(dispatcher.submit(TP, 1, "cold-0", cold))
    await asyncio.sleep(0.1)
    assert not second.done(), "a full dispatcher keeps the consumer from fetching more"
    assert await asyncio.wait_for(second, 5)
    await asyncio.wait_for(dispatcher.close(5), 5)


async def test_slots_taken_back_after_parking_are_repaid_and_the_bound_holds_again() -> None:
    dispatcher = KeyOrderedDispatcher(1, max_parked=10)
    throttle = paced(dispatcher)
    await throttle.acquire("hot", "voice")
    release = asyncio.Event()

    async def hot() -> None:
        await throttle.acquire("hot", "voice")

    async def blocking() -> None:
        await release.wait()

    await dispatcher.submit(TP, 0, "hot-0", hot)  # parks: its slot goes to the next one
    await asyncio.wait_for(dispatcher.submit(TP, 1, "block", blocking), 2)
    # hot-0 comes back while "block" holds the only slot: it runs anyway (overdraft)
    await asyncio.wait_for(_until(lambda: dispatcher.in_flight == 1), 5)
    third = asyncio.create_task(dispatcher.submit(TP, 2, "after", blocking))
    await asyncio.sleep(0.05)
    assert not third.done(), "the overdraft is repaid before a new command is taken"
    release.set()
    assert await asyncio.wait_for(third, 5)
    await asyncio.wait_for(dispatcher.close(5), 5)


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)
