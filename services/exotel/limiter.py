"""Client-side rate limiting of Exotel requests, per account and API family.

:class:`RateLimiter` implements :class:`services.exotel.client.Throttle`. Every
``(account, family)`` pair has its own *lane*; lanes never wait on each other, so a busy or
penalised ``voice`` family of one account does not slow its ``get`` family or any other
account.

Spacing, not buckets
--------------------
Exotel counts requests per minute, but a limiter that lets a minute's budget out in a
burst and then stays silent is exactly what trips 429s once several replicas (or a
sliding window on Exotel's side) line up. Each lane therefore runs GCRA ("virtual
scheduling"): with rate ``r`` the emission interval is ``T = 1/r`` and the lane remembers a
theoretical arrival time ``TAT``. A request may go at ``now`` when
``now >= TAT - (burst - 1) * T``; it then moves ``TAT = max(TAT, now) + T``. With the
default ``burst=1`` grants are at least ``T`` apart, so no window of any length ``w`` holds
more than ``w * r + 1`` of them (a waiter the event loop woke a little late keeps its
slot, so the schedule does not drift with the loop's lag; the bound is then
``w * r + 1.25``, see ``RateLimiter._grant``); N concurrent waiters leave evenly spaced::

    rate r = 5/s, burst 1, six callers arrive together at t=0
    t:  0.0   0.2   0.4   0.6   0.8   1.0
        |-----|-----|-----|-----|-----|
        A     B     C     D     E     F      (FIFO, one every T = 0.2 s)

Waiters are served first come, first served. Only the head of a lane's queue sleeps, until
its grant time (or until something changes the schedule: a new share, a cancellation);
granting and handing the turn to the next waiter happen without an ``await`` in between,
so a cancelled waiter never holds a slot, and the one behind it moves up.

The effective rate of a lane is::

    limit(account, family) * share * aimd_factor * (1 - headroom)

* ``limit``: per account, from :meth:`RateLimiter.from_accounts`
  (``ExotelAccount.per_minute(family) / 60``) or an explicit mapping; a pair not in the
  mapping gets Exotel's published defaults (:data:`DEFAULT_PER_MINUTE`: voice 200/min,
  get 300/min, legs 200/min).
* ``headroom`` (default 2 %) absorbs network jitter between our spacing and Exotel's
  counting window, and the one-request burst of each replica.
* ``share``: this replica's part of the account's budget (below).
* ``aimd_factor``: 1.0 until Exotel says 429 (below).

Sharing between replicas
------------------------
Executor replicas in one consumer group do not talk to each other; each one throttles to
its share of the limit, and the executor calls :meth:`RateLimiter.set_share` with
:func:`partition_share` on every rebalance::

              account limit L (e.g. 200/min voice)
    replica A  owns 4/12 partitions -> share 1/3 -> L/3, spaced 3/L apart
    replica B  owns 4/12 partitions -> share 1/3 -> L/3
    replica C  owns 4/12 partitions -> share 1/3 -> L/3
                                                  ----
                                      at most     L  (minus headroom)

Commands are keyed by call, so an account's traffic spreads over partitions roughly in
proportion; shares sum to 1, so the group never exceeds the limit. If an account's commands
happen to concentrate on few partitions, the group under-uses its budget (safe side) rather
than overshooting it. When a share changes the lane's pending debt is rescaled to the new
rate, so raising the share takes effect at once instead of after the old (long) interval.

429s: pause, then AIMD
----------------------
:meth:`RateLimiter.penalise` (the client calls it on every 429) blocks the lane until
``now + retry_after`` when Exotel said how long (``Retry-After``, or ``X-RateLimit-Reset``
as parsed by ``services.exotel.errors``); without a hint the pause is adaptive: 1 s, doubling
on consecutive 429s up to 30 s. A 429 counts as consecutive when it arrives within one
pause-length of the previous pause ending, i.e. the first requests after a pause were
rejected again; after that long without a 429 the next pause starts at 1 s again.

It also cuts the lane's rate multiplicatively (x0.8, floor 10 % of the limit) and lets it
recover additively afterwards (1 % of the limit per second, starting when the pause ends),
so a limit that is lower in reality than configured converges to just below it. 429s that
arrive while the lane is still paused, or within a second of the previous one, are one
congestion event (concurrent in-flight requests rejected together) and cut the rate once;
they only ever lengthen the pause to honour a longer ``Retry-After``. Retrying the command
is the caller's job (the executor's retry policy); the limiter never drops anything, it
only delays.

Not thread-safe: use one instance from one event loop (the executor's).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from services.exotel.accounts import ApiFamily, ExotelAccount

__all__ = [
    "DEFAULT_PER_MINUTE",
    "FAMILIES",
    "RateLimiter",
    "WaitObserver",
    "partition_share",
]

logger = structlog.get_logger("services.exotel.limiter")

FAMILIES: Final[tuple[ApiFamily, ...]] = ("voice", "get", "legs")

#: Exotel's published limits, requests per minute: voice call APIs, GET APIs (call details,
#: active legs), the Legs API of completed calls.
DEFAULT_PER_MINUTE: Final[Mapping[ApiFamily, int]] = {"voice": 200, "get": 300, "legs": 200}

#: ``on_wait(account, family, seconds)``: how long one successful acquire waited.
WaitObserver = Callable[[str, ApiFamily, float], None]

#: A waiter woken later than its slot by less than this many intervals keeps its slot
#: (the event loop's lateness is not added to the lane's spacing; see ``_grant``).
_LATE_WAKE_INTERVALS: Final = 0.25
#: 429s closer together than this belong to one congestion event.
_SAME_EVENT_SECONDS: Final = 1.0
_NEG_INF: Final = float("-inf")


def partition_share(owned: int, total: int) -> float:
    """This replica's share of each account's limit: ``owned / total`` partitions.

    ``total`` counts the partitions of all command topics; ``owned`` those assigned to this
    replica. With ``total == 0`` (nothing known yet, or a single replica without topics)
    the share is 1.0. A replica owning no partitions gets ``1 / total``, the share of one
    partition, instead of zero (a limiter rate must be positive): it receives no new
    commands, so in steady state it sends nothing whatever its share; the floor only lets
    commands it was still finishing when its partitions were revoked complete at the pace
    of a one-partition owner rather than stall.
    """
    if total < 0 or owned < 0:
        raise ValueError("partition counts must not be negative")
    if owned > total:
        raise ValueError(f"cannot own {owned} of {total} partitions")
    if total == 0:
        return 1.0
    return max(owned, 1) / total


@dataclass(frozen=True)
class _Tuning:
    burst: int
    headroom: float
    decrease: float
    min_factor: float
    recovery_per_second: float
    initial_pause: float
    max_pause: float
    max_block: float


@dataclass(eq=False)
class _Lane:
    """GCRA and penalty state of one (account, family); all times are ``clock()`` values."""

    account: str
    family: ApiFamily
    limit: float
    #: Current emission interval (1 / effective rate) the TAT was scheduled with.
    interval: float = 0.0
    #: Theoretical arrival time of the next request.
    tat: float = _NEG_INF
    #: Nothing is granted before this (a 429's pause).
    blocked_until: float = _NEG_INF
    #: AIMD factor as of ``factor_since``; it grows linearly after that, up to 1.0.
    factor: float = 1.0
    factor_since: float = _NEG_INF
    #: Consecutive-429 counter for adaptive pauses, and the pause last applied.
    streak: int = 0
    pause: float = 0.0
    #: When the current congestion event (first 429 of a group) started.
    event_started: float = _NEG_INF
    #: Turn futures of waiting acquirers, in arrival order; the first one is the head.
    queue: deque[asyncio.Future[None]] = field(default_factory=deque)
    #: Set by the head while it sleeps: resolving it wakes the head to re-plan.
    poke: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.poke is not None and not self.poke.done():
            self.poke.set_result(None)

    def pass_turn(self) -> None:
        if self.queue and not self.queue[0].done():
            self.queue[0].set_result(None)


class RateLimiter:
    """Throttle for :class:`~services.exotel.client.ExotelClient`: one smooth GCRA lane per
    (account, API family), FIFO waiters, per-replica share, 429 pauses and AIMD.

    ``limits`` maps ``(account, family)`` to requests per *second*; pairs not listed get
    :data:`DEFAULT_PER_MINUTE` ``/ 60``. ``clock`` (monotonic seconds) and ``sleep`` are
    injectable for deterministic tests. ``on_wait`` hears each successful acquire's wait
    (zero included); an exception from it is logged and ignored.
    """

    def __init__(
        self,
        limits: Mapping[tuple[str, ApiFamily], float] | None = None,
        *,
        burst: int = 1,
        share: float = 1.0,
        headroom: float = 0.02,
        decrease: float = 0.8,
        min_factor: float = 0.1,
        recovery_per_second: float = 0.01,
        initial_pause: float = 1.0,
        max_pause: float = 30.0,
        max_block: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_wait: WaitObserver | None = None,
    ) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0.0 <= headroom < 1.0:
            raise ValueError("headroom must be in [0, 1)")
        if not 0.0 < decrease <= 1.0:
            raise ValueError("decrease must be in (0, 1]")
        if not 0.0 < min_factor <= 1.0:
            raise ValueError("min_factor must be in (0, 1]")
        if not (recovery_per_second >= 0.0 and math.isfinite(recovery_per_second)):
            raise ValueError("recovery_per_second must be a finite number >= 0")
        if not 0.0 < initial_pause <= max_pause <= max_block or not math.isfinite(max_block):
            raise ValueError("need 0 < initial_pause <= max_pause <= max_block < inf")
        self._tuning = _Tuning(
            burst=burst,
            headroom=headroom,
            decrease=decrease,
            min_factor=min_factor,
            recovery_per_second=recovery_per_second,
            initial_pause=initial_pause,
            max_pause=max_pause,
            max_block=max_block,
        )
        self._limits: dict[tuple[str, ApiFamily], float] = {}
        for (account, family), per_second in (limits or {}).items():
            self._limits[(account, family)] = _check_rate(per_second, f"{account}/{family}")
        self._share = _check_share(share)
        self._clock = clock
        self._sleep = sleep
        self._on_wait = on_wait
        self._lanes: dict[tuple[str, ApiFamily], _Lane] = {}

    @classmethod
    def from_accounts(
        cls,
        accounts: Mapping[str, ExotelAccount] | Iterable[ExotelAccount],
        **options: Any,
    ) -> RateLimiter:
        """Limits from each account's ``per_minute(family) / 60``; ``options`` as for
        the constructor. Accepts ``ExotelSettings.accounts()`` (a mapping by name) or any
        iterable of accounts."""
        values = accounts.values() if isinstance(accounts, Mapping) else accounts
        limits = {
            (account.name, family): account.per_minute(family) / 60.0
            for account in values
            for family in FAMILIES
        }
        return cls(limits, **options)

    # ------------------------------------------------------------------ Throttle

    async def acquire(self, account: str, family: ApiFamily) -> None:
        """Wait (FIFO per account and family) until one more request may be sent."""
        lane = self._lane(account, family)
        started = self._clock()
        if not lane.queue and self._delay(lane, started) <= 0.0:
            self._grant(lane, started)
            self._report(lane, 0.0)
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.queue.append(turn)
        if len(lane.queue) == 1:
            turn.set_result(None)
        try:
            await turn
            while True:
                granted = self._clock()
                delay = self._delay(lane, granted)
                if delay <= 0.0:
                    # no await between grant and leaving the queue
                    self._grant(lane, granted, waiting_since=started)
                    break
                await self._nap(lane, delay)
        finally:
            was_head = bool(lane.queue) and lane.queue[0] is turn
            lane.queue.remove(turn)
            if was_head:
                lane.pass_turn()
        self._report(lane, granted - started)

    def penalise(self, account: str, family: ApiFamily, retry_after: float | None) -> None:
        """Exotel answered 429 for ``family``: pause that lane and cut its rate (see module
        docstring). ``retry_after`` in seconds when Exotel said; ``None`` for adaptive."""
        lane = self._lane(account, family)
        tuning = self._tuning
        now = self._clock()
        self._refresh(lane, now)
        hint = _clamp_retry_after(retry_after, tuning.max_block)
        if now < max(lane.blocked_until, lane.event_started + _SAME_EVENT_SECONDS):
            if hint is not None and now + hint > lane.blocked_until:
                lane.blocked_until = now + hint
                lane.factor_since = max(lane.factor_since, lane.blocked_until)
            return
        lane.event_started = now
        calm = max(lane.pause, tuning.initial_pause)
        lane.streak = 1 if now - lane.blocked_until > calm else lane.streak + 1
        if hint is None:
            doublings = min(lane.streak - 1, 32)
            pause = min(tuning.initial_pause * 2.0**doublings, tuning.max_pause)
        else:
            pause = hint
        lane.pause = pause
        lane.blocked_until = max(lane.blocked_until, now + pause)
        lane.factor = max(tuning.min_factor, self._factor(lane, now) * tuning.decrease)
        lane.factor_since = max(now, lane.blocked_until)
        self._refresh(lane, now)
        logger.warning(
            "exotel.limiter.penalised",
            account=account,
            family=family,
            retry_after=retry_after,
            pause_s=round(pause, 3),
            rate_per_minute=round(60.0 / lane.interval, 2),
            streak=lane.streak,
        )

    # ------------------------------------------------------------------ sharing

    @property
    def share(self) -> float:
        return self._share

    def set_share(self, share: float) -> None:
        """This replica's part of every account's limit, ``0 < share <= 1`` (see
        :func:`partition_share`); takes effect at once, also for requests already waiting."""
        self._share = _check_share(share)
        now = self._clock()
        for lane in self._lanes.values():
            self._refresh(lane, now)
            lane.wake()

    # ------------------------------------------------------------------ introspection

    def try_acquire(self, account: str, family: ApiFamily) -> bool:
        """Take a slot if one is free right now and nobody is queued; never waits."""
        lane = self._lane(account, family)
        now = self._clock()
        if lane.queue or self._delay(lane, now) > 0.0:
            return False
        self._grant(lane, now)
        return True

    def would_wait(self, account: str, family: ApiFamily) -> bool:
        """Whether :meth:`acquire` would wait now (someone is queued, or the next grant
        is in the future); when not, it grants without suspending."""
        lane = self._lane(account, family)
        return bool(lane.queue) or self._delay(lane, self._clock()) > 0.0

    def limit(self, account: str, family: ApiFamily) -> float:
        """The configured limit in requests per second (before share, headroom and 429s)."""
        return self._limits.get((account, family), DEFAULT_PER_MINUTE[family] / 60.0)

    def rate(self, account: str, family: ApiFamily) -> float:
        """The effective rate right now, requests per second."""
        lane = self._lane(account, family)
        return self._rate(lane, self._clock())

    def blocked_for(self, account: str, family: ApiFamily) -> float:
        """Seconds left of the pause a 429 imposed (0.0 if none)."""
        lane = self._lane(account, family)
        return max(0.0, lane.blocked_until - self._clock())

    def waiting(self, account: str, family: ApiFamily) -> int:
        """How many acquires are queued for the pair."""
        lane = self._lanes.get((account, family))
        return len(lane.queue) if lane is not None else 0

    # ------------------------------------------------------------------ internals

    def _lane(self, account: str, family: ApiFamily) -> _Lane:
        key = (account, family)
        lane = self._lanes.get(key)
        if lane is None:
            if family not in DEFAULT_PER_MINUTE:
                raise ValueError(f"unknown API family {family!r}")
            lane = _Lane(account=account, family=family, limit=self.limit(account, family))
            lane.interval = 1.0 / self._rate(lane, self._clock())
            self._lanes[key] = lane
        return lane

    def _factor(self, lane: _Lane, now: float) -> float:
        if lane.factor >= 1.0:
            return 1.0
        recovered = self._tuning.recovery_per_second * max(0.0, now - lane.factor_since)
        return min(1.0, lane.factor + recovered)

    def _rate(self, lane: _Lane, now: float) -> float:
        factor = self._factor(lane, now)
        return lane.limit * self._share * factor * (1.0 - self._tuning.headroom)

    def _refresh(self, lane: _Lane, now: float) -> None:
        """Adopt the current rate; debt already scheduled is rescaled to it."""
        interval = 1.0 / self._rate(lane, now)
        if interval != lane.interval:
            if lane.tat > now:
                lane.tat = now + (lane.tat - now) * (interval / lane.interval)
            lane.interval = interval

    def _delay(self, lane: _Lane, now: float) -> float:
        self._refresh(lane, now)
        tolerance = (self._tuning.burst - 1) * lane.interval
        return max(lane.tat - tolerance, lane.blocked_until) - now

    def _grant(self, lane: _Lane, now: float, *, waiting_since: float | None = None) -> None:
        """Move the TAT past this grant.

        A waiter that was already waiting when its slot came (``waiting_since`` at or
        before the TAT) and woke late by less than :data:`_LATE_WAKE_INTERVALS` of an
        interval is granted *at its slot*: the lateness is the event loop's (a sleeper
        wakes when the loop gets to it: tens of milliseconds on a loaded executor), and
        adding it to every interval would lower the rate of every backlogged lane (50
        accounts through one executor got 0.90 of their limit instead of 0.98:
        bench/RESULTS.md, "The executor's CPU per command"). Such a grant can be closer
        than one interval to the next (by its lateness), so a window of width ``w`` holds
        at most ``w * r + 1 + _LATE_WAKE_INTERVALS`` grants instead of ``w * r + 1``; the
        headroom keeps a minute at Exotel's limits (200/min: 196 + 1.25) within them. A
        request after an idle lane, or one woken later than that, gets no such credit."""
        start = max(lane.tat, now)
        if (
            waiting_since is not None
            and waiting_since <= lane.tat <= now < lane.tat + _LATE_WAKE_INTERVALS * lane.interval
            and lane.tat >= lane.blocked_until
        ):
            start = lane.tat
        lane.tat = start + lane.interval

    async def _nap(self, lane: _Lane, delay: float) -> None:
        """Sleep ``delay`` or until the lane is poked (share change, config change)."""
        poke: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.poke = poke
        sleeper = asyncio.ensure_future(self._sleep(delay))
        try:
            await asyncio.wait((sleeper, poke), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if lane.poke is poke:
                lane.poke = None
            poke.cancel()
            sleeper.cancel()

    def _report(self, lane: _Lane, seconds: float) -> None:
        if self._on_wait is None:
            return
        try:
            self._on_wait(lane.account, lane.family, max(0.0, seconds))
        except Exception:  # metrics must never change a request's outcome
            logger.warning("exotel.limiter.on_wait_failed", exc_info=True)


def _check_rate(value: float, what: str) -> float:
    rate = float(value)
    if not (rate > 0.0 and math.isfinite(rate)):
        raise ValueError(f"limit for {what} must be a positive finite number of requests/s")
    return rate


def _check_share(share: float) -> float:
    value = float(share)
    if not 0.0 < value <= 1.0:
        raise ValueError("share must be in (0, 1]")
    return value


def _clamp_retry_after(value: float | None, ceiling: float) -> float | None:
    if value is None or math.isnan(value):
        return None
    return min(max(0.0, value), ceiling)
