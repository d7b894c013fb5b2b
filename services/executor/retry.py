"""When to try Exotel again: jittered exponential backoff within a per-command budget.

Transient errors (5xx, timeouts, 429) are retried while attempts and the deadline allow;
permanent ones (other 4xx) are final. A 429 waits at least what Exotel asked for
(``Retry-After``), then the jittered backoff. A timeout after the request went out (its
answer was lost) is retried only where sending the request twice does no harm.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, Field, model_validator
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from services.exotel.errors import ExotelError, ExotelTimeout, ExotelTransientError

T = TypeVar("T")


class RetryPolicy(BaseModel):
    """The retry budget of one command."""

    max_attempts: int = Field(default=5, ge=1, le=50)
    initial_seconds: float = Field(default=0.5, gt=0)
    max_backoff_seconds: float = Field(default=20.0, gt=0)
    deadline_seconds: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.initial_seconds > self.max_backoff_seconds:
            raise ValueError("initial backoff must not exceed the maximum backoff")
        return self


class _ExotelWait:
    """Full-jitter exponential backoff, never shorter than Exotel's Retry-After."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._jitter = wait_random_exponential(
            multiplier=policy.initial_seconds, max=policy.max_backoff_seconds
        )

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self._jitter(state))
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            return max(float(retry_after), backoff)
        return backoff


def answer_lost(error: ExotelError) -> bool:
    """A timeout after the request was sent: Exotel may have acted on it."""
    return isinstance(error, ExotelTimeout) and error.maybe_sent


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[ExotelError, int, float], None] | None = None,
    retry_lost_answers: bool = True,
) -> T:
    """Run ``call`` until it succeeds, fails permanently, or the budget is spent; the
    final :class:`ExotelError` is raised.

    ``retry_lost_answers=False``: a lost answer (:func:`answer_lost`) is final too (a call
    that may already be ringing is looked for, never placed again).
    """

    def retryable(error: BaseException) -> bool:
        if not isinstance(error, ExotelTransientError):
            return False
        return retry_lost_answers or not answer_lost(error)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_retry and isinstance(error, ExotelError):
            on_retry(error, state.attempt_number, state.upcoming_sleep)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.deadline_seconds),
        wait=_ExotelWait(policy),
        retry=retry_if_exception(retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(call)
