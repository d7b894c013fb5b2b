"""The Exotel rate limiter: smooth spacing, FIFO waiters, shares, 429 pauses and AIMD.

Almost everything runs on virtual time (:class:`FakeTime`): the limiter's ``clock`` and
``sleep`` are a fake whose timers fire only when the test advances time, so grant times are
exact and the tests are fast and deterministic.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.exotel.accounts import ApiFamily
from services.exotel.limiter import DEFAULT_PER_MINUTE, RateLimiter, partition_share
from tests.exotel.conftest import make_account

#: Loop iterations to let woken tasks run far enough to block again.
SETTLE_STEPS = 40


class FakeTime:
    """Virtual monotonic time with sleepers that wake only when the test advances time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, delay), next(self._seq), fut))
        await fut

    async def settle(self) -> None:
        for _ in range(SETTLE_STEPS):
            await asyncio.sleep(0)

    async def run_until(self, until: float) -> None:
        """Fire every timer due up to ``until`` in order, letting tasks react to each."""
        await self.settle()
        while self._timers and self._timers[0][0] <= until:
            when, _, fut = heapq.heappop(self._timers)
            if fut.done():
                continue
            self.now = max(self.now, when)
            fut.set_result(None)
            await self.settle()
        self.now = max(self.now, until)
        await self.settle()

    async def advance(self, seconds: float) -> None:
        await self.run_until(self.now + seconds)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def limiter_on(fake: FakeTime, per_second: float = 5.0, **options: object) -> RateLimiter:
    options.setdefault("headroom", 0.0)
    return RateLimiter(
        {("acme", "voice"): per_second, ("acme", "get"): per_second},
        clock=fake.clock,
        sleep=fake.sleep,
        **options,  # type: ignore[arg-type]
    )


class Recorder:
    """Starts acquires as tasks and records when (in virtual time) each one was granted."""

    def __init__(self, limiter: RateLimiter, fake: FakeTime) -> None:
        self.limiter = limiter
        self.fake = fake
        self.granted: dict[str, float] = {}
        self.order: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, account: str = "acme", family: ApiFamily = "voice") -> None:
        async def run() -> None:
            await self.limiter.acquire(account, family)
            self.granted[name] = self.fake.now
            self.order.append(name)

        self.tasks[name] = asyncio.create_task(run(), name=name)

    async def start_many(self, names: Sequence[str], **kwargs: ApiFamily | str) -> None:
        for name in names:
            self.start(name, **kwargs)  # type: ignore[arg-type]
            await asyncio.sleep(0)  # let each one join the queue in this order

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


def max_in_any_window(times: Sequence[float], width: float) -> int:
    """Most grants in any half-open window ``[t, t + width)``."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= width - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


class Offer:
    """Offers ``per_second`` acquires to a limiter, paced in virtual time, and records the
    (virtual) time each one was granted. Time is advanced by the test, not by the offer."""

    def __init__(self, limiter: RateLimiter, fake: FakeTime, per_second: float) -> None:
        self.granted: list[float] = []
        self._limiter = limiter
        self._fake = fake
        self._tasks: list[asyncio.Task[None]] = []
        self._producer = asyncio.create_task(self._produce(per_second))

    async def _one(self) -> None:
        await self._limiter.acquire("acme", "voice")
        self.granted.append(self._fake.now)

    async def _produce(self, per_second: float) -> None:
        while True:
            self._tasks.append(asyncio.create_task(self._one()))
            await self._fake.sleep(1.0 / per_second)

    async def stop(self) -> None:
        tasks = [self._producer, *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def offer_for(
    fake: FakeTime, seconds: float, *offers: tuple[RateLimiter, float]
) -> list[float]:
    """Run offers (limiter, requests/s) together for ``seconds``; all grant times."""
    running = [Offer(limiter, fake, per_second) for limiter, per_second in offers]
    await fake.run_until(seconds - 1e-9)
    for one in running:
        await one.stop()
    return sorted(t for one in running for t in one.granted)


# ---------------------------------------------------------------------- spacing


async def test_concurrent_waiters_are_granted_one_interval_apart(fake: FakeTime) -> None:
    rec = Recorder(limiter_on(fake, per_second=5.0), fake)
    await rec.start_many("ABCDEF")
    await fake.run_until(2.0)
    assert [rec.granted[n] for n in "ABCDEF"] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    await rec.close()


class LateTime(FakeTime):
    """Virtual time whose sleepers wake ``lag`` seconds late (a busy event loop)."""

    def __init__(self, lag: float) -> None:
        super().__init__()
        self.lag = lag

    async def sleep(self, delay: float) -> None:
        await super().sleep(delay + self.lag)


async def test_a_backlog_keeps_its_rate_when_the_loop_wakes_sleepers_late() -> None:
    late = LateTime(lag=0.02)  # a tenth of the interval
    rec = Recorder(limiter_on(late, per_second=5.0), late)
    names = [f"w{i}" for i in range(21)]
    await rec.start_many(names)
    await late.run_until(10.0)
    granted = [rec.granted[n] for n in names]
    # on the schedule (one every 0.2 s), each at most the lag after its slot; without
    # the credit every interval would be 0.22 s (4.4 s for the 20 intervals)
    assert granted[-1] == pytest.approx(4.0 + 0.02)
    assert all(b - a >= 0.2 - 0.02 - 1e-9 for a, b in itertools.pairwise(granted))
    assert max_in_any_window(granted, 1.0) <= 5 + 1
    await rec.close()


async def test_a_sleeper_woken_much_later_than_its_slot_gets_no_credit() -> None:
    late = LateTime(lag=0.1)  # half an interval: more than a loop's lag
    rec = Recorder(limiter_on(late, per_second=5.0), late)
    await rec.start_many("ABC")
    await late.run_until(5.0)
    assert [rec.granted[n] for n in "ABC"] == pytest.approx([0.0, 0.3, 0.6])
    await rec.close()


async def test_an_idle_lane_banks_no_credit_for_the_time_it_was_idle(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=5.0)
    rec = Recorder(limiter, fake)
    await rec.start_many("AB")
    await fake.run_until(0.25)  # A at 0, B at 0.2
    fake.now = 0.41  # C comes after its slot (0.4) had passed, idle: none of that is kept
    await rec.start_many("CD")
    await fake.run_until(2.0)
    assert [rec.granted[n] for n in "ABCD"] == pytest.approx([0.0, 0.2, 0.41, 0.61])
    await rec.close()


async def test_waiters_are_served_in_arrival_order(fake: FakeTime) -> None:
    rec = Recorder(limiter_on(fake, per_second=10.0), fake)
    names = [f"w{i}" for i in range(25)]
    await rec.start_many(names)
    await fake.run_until(5.0)
    assert rec.order == names
    await rec.close()


async def test_an_idle_lane_grants_the_first_request_without_waiting(fake: FakeTime) -> None:
    waits: list[float] = []
    limiter = limiter_on(fake, on_wait=lambda _a, _f, s: waits.append(s))
    await limiter.acquire("acme", "voice")
    fake.now = 10.0
    await limiter.acquire("acme", "voice")
    assert waits == [0.0, 0.0]


async def test_three_times_the_limit_offered_never_exceeds_the_limit_in_any_second(
    fake: FakeTime,
) -> None:
    limit = 10.0
    limiter = RateLimiter({("acme", "voice"): limit}, clock=fake.clock, sleep=fake.sleep)
    granted = await offer_for(fake, 20.0, (limiter, 3 * limit))
    assert max_in_any_window(granted, 1.0) <= limit
    assert 0.95 <= len(granted) / (limit * 20.0) <= 1.0


async def test_three_replicas_sharing_by_partitions_stay_within_the_limit_together(
    fake: FakeTime,
) -> None:
    limit = 9.0
    replicas = [
        RateLimiter({("acme", "voice"): limit}, clock=fake.clock, sleep=fake.sleep)
        for _ in range(3)
    ]
    for replica, owned in zip(replicas, (4, 4, 4), strict=True):
        replica.set_share(partition_share(owned, 12))
    granted = await offer_for(fake, 20.0, *((replica, limit) for replica in replicas))
    assert max_in_any_window(granted, 1.0) <= limit
    assert 0.9 <= len(granted) / (limit * 20.0) <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=200),
    per_second=st.floats(min_value=0.5, max_value=50.0),
    burst=st.integers(min_value=1, max_value=5),
)
def test_no_window_ever_holds_more_than_burst_plus_rate_times_its_width(
    gaps: list[float], per_second: float, burst: int
) -> None:
    fake = FakeTime()
    limiter = RateLimiter(
        {("acme", "voice"): per_second},
        burst=burst,
        headroom=0.0,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    granted: list[float] = []
    for gap in gaps:
        fake.now += gap
        if limiter.try_acquire("acme", "voice"):
            granted.append(fake.now)
    interval = 1.0 / per_second
    for width in (interval, 1.0, 5.0):
        assert max_in_any_window(granted, width) <= burst + width * per_second + 1e-6
    if burst == 1:
        assert all(b - a >= interval - 1e-9 for a, b in itertools.pairwise(granted))


# ---------------------------------------------------------------------- sharing


async def test_a_share_of_one_half_halves_the_rate(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=4.0)
    limiter.set_share(0.5)
    assert limiter.rate("acme", "voice") == pytest.approx(2.0)
    rec = Recorder(limiter, fake)
    await rec.start_many("ABC")
    await fake.run_until(2.0)
    assert [rec.granted[n] for n in "ABC"] == pytest.approx([0.0, 0.5, 1.0])
    await rec.close()


async def test_raising_the_share_speeds_up_a_request_already_waiting(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=1.0, share=0.01)  # one grant per 100 s
    rec = Recorder(limiter, fake)
    await rec.start_many("AB")
    await fake.run_until(1.0)
    assert "B" not in rec.granted
    limiter.set_share(1.0)  # the 99 s still owed become 0.99 s at the new rate
    await fake.run_until(2.5)
    assert rec.granted["B"] == pytest.approx(1.99)
    await rec.close()


def test_partition_share_is_the_fraction_of_partitions_owned() -> None:
    assert partition_share(3, 12) == pytest.approx(0.25)
    assert partition_share(12, 12) == 1.0


def test_partition_share_is_one_when_no_partitions_are_known() -> None:
    assert partition_share(0, 0) == 1.0


def test_a_replica_owning_no_partitions_keeps_the_share_of_one_partition() -> None:
    assert partition_share(0, 8) == pytest.approx(1 / 8)


@pytest.mark.parametrize(("owned", "total"), [(-1, 4), (5, 4), (0, -1)])
def test_partition_share_rejects_impossible_counts(owned: int, total: int) -> None:
    with pytest.raises(ValueError, match="partition"):
        partition_share(owned, total)


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5, float("nan")])
def test_a_share_outside_zero_to_one_is_rejected(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        RateLimiter().set_share(share)


# ---------------------------------------------------------------------- cancellation


async def test_a_cancelled_waiter_gives_its_turn_to_the_next_one(fake: FakeTime) -> None:
    rec = Recorder(limiter_on(fake, per_second=5.0), fake)
    await rec.start_many("ABCD")
    await fake.settle()
    rec.tasks["B"].cancel()
    await fake.run_until(2.0)
    assert rec.order == ["A", "C", "D"]
    assert [rec.granted[n] for n in "ACD"] == pytest.approx([0.0, 0.2, 0.4])
    assert rec.limiter.waiting("acme", "voice") == 0
    await rec.close()


async def test_cancelling_the_sleeping_head_does_not_leak_its_slot(fake: FakeTime) -> None:
    rec = Recorder(limiter_on(fake, per_second=5.0), fake)
    await rec.start_many("ABC")
    await fake.run_until(0.1)  # A granted at 0; B sleeps at the head until 0.2
    rec.tasks["B"].cancel()
    await fake.run_until(1.0)
    assert rec.order == ["A", "C"]
    assert rec.granted["C"] == pytest.approx(0.2)
    await rec.close()


async def test_a_lane_keeps_working_after_all_its_waiters_were_cancelled(
    fake: FakeTime,
) -> None:
    rec = Recorder(limiter_on(fake, per_second=5.0), fake)
    await rec.start_many("ABC")
    await fake.settle()
    for name in "BC":
        rec.tasks[name].cancel()
    await fake.run_until(1.0)
    rec.start("D")
    await fake.run_until(2.0)
    assert rec.order == ["A", "D"]
    assert rec.granted["D"] == pytest.approx(1.0)
    await rec.close()


# ---------------------------------------------------------------------- 429s


async def test_retry_after_blocks_the_family_for_that_long(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=100.0)
    limiter.penalise("acme", "voice", 7.0)
    assert limiter.blocked_for("acme", "voice") == pytest.approx(7.0)
    rec = Recorder(limiter, fake)
    rec.start("A")
    await fake.run_until(6.9)
    assert "A" not in rec.granted
    await fake.run_until(8.0)
    assert rec.granted["A"] == pytest.approx(7.0)
    await rec.close()


async def test_a_penalty_does_not_block_other_families_or_accounts(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=5.0)
    limiter.penalise("acme", "voice", 30.0)
    rec = Recorder(limiter, fake)
    rec.start("voice")
    rec.start("get", family="get")
    rec.start("other", account="globex")
    await fake.run_until(1.0)
    assert rec.granted == {"get": 0.0, "other": 0.0}
    assert limiter.rate("acme", "get") == pytest.approx(5.0)
    await rec.close()


async def test_without_retry_after_the_pause_starts_at_one_second_and_doubles(
    fake: FakeTime,
) -> None:
    limiter = limiter_on(fake, per_second=5.0)
    pauses = []
    for _ in range(7):
        limiter.penalise("acme", "voice", None)
        pause = limiter.blocked_for("acme", "voice")
        pauses.append(pause)
        await fake.advance(pause + 0.1)  # the first request after the pause is rejected again
    assert pauses == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0])


async def test_the_adaptive_pause_starts_over_after_a_calm_period(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=5.0)
    limiter.penalise("acme", "voice", None)
    await fake.advance(1.1)
    limiter.penalise("acme", "voice", None)
    assert limiter.blocked_for("acme", "voice") == pytest.approx(2.0)
    await fake.advance(2.0 + 5.0)  # traffic flowed for longer than the last pause
    limiter.penalise("acme", "voice", None)
    assert limiter.blocked_for("acme", "voice") == pytest.approx(1.0)


async def test_429s_of_one_burst_slow_the_family_down_only_once(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=10.0)
    for _ in range(5):  # five in-flight requests rejected together
        limiter.penalise("acme", "voice", None)
    assert limiter.rate("acme", "voice") == pytest.approx(8.0)
    assert limiter.blocked_for("acme", "voice") == pytest.approx(1.0)


async def test_a_longer_retry_after_within_the_same_burst_extends_the_pause(
    fake: FakeTime,
) -> None:
    limiter = limiter_on(fake, per_second=10.0)
    limiter.penalise("acme", "voice", 2.0)
    limiter.penalise("acme", "voice", 5.0)
    limiter.penalise("acme", "voice", 1.0)
    assert limiter.blocked_for("acme", "voice") == pytest.approx(5.0)
    assert limiter.rate("acme", "voice") == pytest.approx(8.0)


async def test_repeated_429s_cut_the_rate_and_it_recovers_over_time(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=10.0, recovery_per_second=0.01)
    rates = []
    for _ in range(3):
        limiter.penalise("acme", "voice", 0.0)
        rates.append(limiter.rate("acme", "voice"))
        await fake.advance(1.5)  # recovers by 1.5 s * 0.01 * 10/s = 0.15/s meanwhile
    assert rates == pytest.approx([8.0, (8.0 + 0.15) * 0.8, ((8.0 + 0.15) * 0.8 + 0.15) * 0.8])
    after_cuts = rates[-1] + 0.15
    assert limiter.rate("acme", "voice") == pytest.approx(after_cuts)
    await fake.advance(20.0)  # additive recovery: 0.1/s per second
    assert limiter.rate("acme", "voice") == pytest.approx(after_cuts + 2.0)
    await fake.advance(100.0)  # back to, and capped at, the configured limit
    assert limiter.rate("acme", "voice") == pytest.approx(10.0)


async def test_the_rate_never_falls_below_the_floor(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=10.0, min_factor=0.1, recovery_per_second=0.0)
    for _ in range(30):
        limiter.penalise("acme", "voice", 0.0)
        await fake.advance(1.5)
    assert limiter.rate("acme", "voice") == pytest.approx(1.0)


async def test_waiters_resume_at_the_reduced_rate_after_a_penalty(fake: FakeTime) -> None:
    limiter = limiter_on(fake, per_second=4.0, recovery_per_second=0.0)
    rec = Recorder(limiter, fake)
    await rec.start_many("ABCD")
    await fake.run_until(0.1)  # A granted at 0
    limiter.penalise("acme", "voice", 3.0)  # 3.2/s from now on: 0.3125 s apart
    await fake.run_until(10.0)
    assert [rec.granted[n] for n in "BCD"] == pytest.approx([3.1, 3.4125, 3.725])
    await rec.close()


@pytest.mark.parametrize("retry_after", [-5.0, float("nan"), float("inf"), 1e9])
async def test_odd_retry_after_values_are_clamped(fake: FakeTime, retry_after: float) -> None:
    limiter = limiter_on(fake, max_block=300.0)
    limiter.penalise("acme", "voice", retry_after)
    assert 0.0 <= limiter.blocked_for("acme", "voice") <= 300.0


# ---------------------------------------------------------------------- configuration


def test_from_accounts_defaults_to_exotels_published_limits() -> None:
    limiter = RateLimiter.from_accounts({"default": make_account()})
    assert limiter.limit("default", "voice") == pytest.approx(200 / 60)
    assert limiter.limit("default", "get") == pytest.approx(300 / 60)
    assert limiter.limit("default", "legs") == pytest.approx(200 / 60)


def test_from_accounts_takes_each_accounts_own_limits() -> None:
    sales = make_account(name="sales", voice_calls_per_minute=60, get_per_minute=120)
    limiter = RateLimiter.from_accounts([make_account(), sales], headroom=0.0)
    assert limiter.rate("sales", "voice") == pytest.approx(1.0)
    assert limiter.rate("sales", "get") == pytest.approx(2.0)
    assert limiter.rate("default", "voice") == pytest.approx(200 / 60)


def test_an_unknown_account_gets_the_published_defaults() -> None:
    limiter = RateLimiter()
    assert {f: limiter.limit("nobody", f) * 60 for f in DEFAULT_PER_MINUTE} == pytest.approx(
        {"voice": 200, "get": 300, "legs": 200}
    )


def test_headroom_keeps_the_effective_rate_just_under_the_limit() -> None:
    limiter = RateLimiter({("acme", "voice"): 10.0}, headroom=0.02)
    assert limiter.rate("acme", "voice") == pytest.approx(9.8)


@pytest.mark.parametrize("limit", [0.0, -1.0, float("inf")])
def test_a_non_positive_or_infinite_limit_is_rejected(limit: float) -> None:
    with pytest.raises(ValueError, match="limit"):
        RateLimiter({("acme", "voice"): limit})


# ---------------------------------------------------------------------- observability


async def test_on_wait_hears_how_long_each_acquire_waited(fake: FakeTime) -> None:
    heard: list[tuple[str, str, float]] = []
    limiter = limiter_on(fake, per_second=5.0, on_wait=lambda a, f, s: heard.append((a, f, s)))
    rec = Recorder(limiter, fake)
    await rec.start_many("ABC")
    await fake.run_until(1.0)
    assert heard == [
        ("acme", "voice", 0.0),
        ("acme", "voice", pytest.approx(0.2)),
        ("acme", "voice", pytest.approx(0.4)),
    ]
    await rec.close()


async def test_a_failing_on_wait_callback_does_not_fail_the_acquire(fake: FakeTime) -> None:
    def broken(_account: str, _family: ApiFamily, _seconds: float) -> None:
        raise RuntimeError("metrics down")

    limiter = limiter_on(fake, on_wait=broken)
    await limiter.acquire("acme", "voice")
    assert limiter.waiting("acme", "voice") == 0


# ---------------------------------------------------------------------- real time


async def test_real_time_acquires_are_paced_and_all_complete() -> None:
    limiter = RateLimiter({("acme", "voice"): 50.0}, headroom=0.0)
    started = time.monotonic()
    done: list[int] = []

    async def one(i: int) -> None:
        await limiter.acquire("acme", "voice")
        done.append(i)

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(10))), timeout=30.0)
    elapsed = time.monotonic() - started
    assert sorted(done) == list(range(10))
    assert elapsed >= 9 / 50 * 0.9  # nine intervals of 20 ms; no upper bound asserted
