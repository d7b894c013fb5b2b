"""One command's requests to Exotel: the one retry path, and the one place where a request
with an effect is preceded by its recorded intent.

Every request is retried on its own within the command's retry budget
(:func:`~services.executor.retry.with_retries`); a result's ``attempts`` is the sum over
all of them. A request that changes something at Exotel (placing a call, creating,
upgrading or hanging up a leg) goes through :meth:`Exchange.effect`, which on each
attempt, in this order:

1. waits for the rate limiter's slot: a command stopped while it waits (shutdown,
   rebalance) has sent nothing and is simply run again later;
2. records the command's intent in the journal (the first time), durably: from here on
   the request may reach Exotel, so a run that stops now leaves the command *in doubt*,
   to be reconciled against Exotel instead of being sent again blindly;
3. sends the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from contracts.commands import CommandType
from services.executor.ports import EffectJournal, ExecutorObserver, ExotelGateway
from services.executor.retry import RetryPolicy, with_retries
from services.exotel.client import Slot
from services.exotel.errors import ExotelError

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Failed:
    """A request's final error. ``maybe_sent``: some attempt may have reached Exotel, so a
    final 4xx may be the effect of our own earlier attempt."""

    error: ExotelError
    maybe_sent: bool


@dataclass
class Exchange:
    """The Exotel requests of one command, each retried on its own, attempts summed."""

    gateway: ExotelGateway
    policy: RetryPolicy
    command_id: str
    command_type: CommandType
    account: str
    journal: EffectJournal | None = None
    observer: ExecutorObserver | None = None
    attempts: int = 0
    _intended: bool = field(default=False, init=False, repr=False)

    async def read(self, call: Callable[[], Awaitable[T]]) -> T | Failed:
        """A request without an effect (active legs, call details)."""
        return await self._retried(call, retry_lost_answers=True, sent_before=False)

    async def effect(
        self,
        send: Callable[[Slot], Awaitable[T]],
        *,
        evidence: Mapping[str, str],
        retry_lost_answers: bool = True,
        sent_before: bool = False,
    ) -> T | Failed:
        """A request with an effect: slot, intent (with ``evidence`` for reconciling),
        request, on every attempt (see the module docstring).

        ``retry_lost_answers=False``: a timeout after sending is final (the call may be
        ringing). ``sent_before``: an earlier run may already have sent this request.
        """

        async def attempt() -> T:
            slot = await self.gateway.wait_for_slot("voice")
            await self._record_intent(evidence)
            return await send(slot)

        return await self._retried(
            attempt, retry_lost_answers=retry_lost_answers, sent_before=sent_before
        )

    async def _record_intent(self, evidence: Mapping[str, str]) -> None:
        if self.journal is None or self._intended:
            return
        await self.journal.intend(
            command_id=self.command_id,
            command_type=self.command_type,
            account=self.account,
            evidence=evidence,
        )
        self._intended = True

    async def _retried(
        self, call: Callable[[], Awaitable[T]], *, retry_lost_answers: bool, sent_before: bool
    ) -> T | Failed:
        maybe_sent = sent_before

        async def attempt() -> T:
            nonlocal maybe_sent
            self.attempts += 1
            try:
                return await call()
            except ExotelError as error:
                maybe_sent = maybe_sent or error.maybe_sent
                raise

        try:
            return await with_retries(
                attempt,
                self.policy,
                on_retry=self._on_retry,
                retry_lost_answers=retry_lost_answers,
            )
        except ExotelError as error:
            return Failed(error, maybe_sent)

    def _on_retry(self, error: ExotelError, attempt: int, sleep: float) -> None:
        log.warning(
            "exotel.retry",
            attempt=attempt,
            sleep_seconds=round(sleep, 3),
            http_status=error.http_status,
            exotel_code=error.exotel_code,
            error=error.message,
        )
        if self.observer is not None:
            self.observer.retried(self.command_type, error)
