"""When to try Exotel again: jittered exponential backoff within a per-command budget.

Transient errors (5xx, timeouts, 429) are retried while attempts and the deadline allow;
permanent ones (other 4xx) are final. A 429 waits at least what Exotel asked for
(``Retry-After``), then the jittered backoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, Field, model_validator
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from services.exotel.errors import ExotelError, ExotelTransientError

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


@dataclass
class Attempted(Generic[T]):
    """A value, or the final error, and how many attempts it took."""

    attempts: int
    value: T | None = None
    error: ExotelError | None = None


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[ExotelError, int, float], None] | None = None,
    unless: Callable[[ExotelError], bool] | None = None,
) -> Attempted[T]:
    """Run ``call`` until it succeeds, fails permanently, or the budget is spent.

    ``unless``: a transient error for which it returns True is not retried either (e.g. a
    timeout after a call may already have been placed: that is reconciled, not resent).
    """
    attempts = 0

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_retry and isinstance(error, ExotelError):
            on_retry(error, state.attempt_number, state.upcoming_sleep)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.deadline_seconds),
        wait=_ExotelWait(policy),
        retry=retry_if_exception(
            lambda e: isinstance(e, ExotelTransientError) and not (unless and unless(e))
        ),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                attempts += 1
                value = await call()
    except ExotelError as error:
        return Attempted(attempts, error=error)
    return Attempted(attempts, value=value)
