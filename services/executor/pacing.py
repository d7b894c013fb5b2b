"""The executor's throttle: the rate limiter, with a command that must wait for its
account's rate slot giving its dispatcher slot to others meanwhile.

Without this, one account with more commands than its limit lets out fills every one of
the executor's ``EXECUTOR_MAX_IN_FLIGHT`` slots with commands waiting in that account's
lane, and the other accounts' commands wait behind them for no reason of their own::

    slots:  [A wait][A wait][A wait] ... [A wait]     B's command: no slot (head-of-line)
    parked: [A wait][A wait][A wait] ...              slots: [B runs][...]

A command parks only when the limiter says it would wait (``RateLimiter.would_wait``:
someone queued, or the lane's next grant is in the future); at most
``EXECUTOR_MAX_RATE_WAITING`` are parked at once, beyond that they wait in their slots (so
a full executor still stops fetching: memory stays bounded).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from services.exotel.accounts import ApiFamily
from services.exotel.limiter import RateLimiter


@dataclass(frozen=True)
class PacedThrottle:
    """A ``Throttle`` (``services.exotel.client``) over ``limiter``; ``parked`` is the
    dispatcher's ``parked_while``."""

    limiter: RateLimiter
    parked: Callable[[], AbstractAsyncContextManager[bool]]

    async def acquire(self, account: str, family: ApiFamily) -> None:
        if not self.limiter.would_wait(account, family):
            # Granted at once: nothing between the check and the grant can await.
            await self.limiter.acquire(account, family)
            return
        async with self.parked():
            await self.limiter.acquire(account, family)

    def penalise(self, account: str, family: ApiFamily, retry_after: float | None) -> None:
        self.limiter.penalise(account, family, retry_after)
