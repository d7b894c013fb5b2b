"""What a command handler works with: the account, its Exotel exchange, its result.

One :class:`CommandRun` per command, built by the service; nothing in it calls back into
the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from contracts.details import CallDetails
from services.executor.commands.exchange import Exchange
from services.executor.commands.outcomes import Outcomes
from services.executor.mapping.callbacks import CallbackContentType, CallbackTarget
from services.executor.numbers import NumberCache
from services.executor.ports import (
    Account,
    DetailsSink,
    ExotelGateway,
    InDoubt,
    StatusEvidence,
)


class Interrupted(Exception):
    """The command stopped before its outcome (its partition was revoked, or the executor
    is stopping): no result; Kafka delivers it again, and it resumes from its checkpoint."""


@dataclass
class CommandRun:
    """One command's run. ``in_doubt``: an earlier run recorded its intent and stopped;
    the request may have reached Exotel, so the handler reconciles instead of resending."""

    account: Account
    exotel: Exchange
    #: the command's result, with the attempts its exchange made
    result: Outcomes
    callbacks: CallbackTarget
    callback_content_type: CallbackContentType
    reconcile_window_seconds: float
    reconcile_poll_seconds: float
    clock: Callable[[], datetime]
    in_doubt: InDoubt | None = None
    #: call.status as evidence of a call placed by a request whose answer was lost
    statuses: StatusEvidence | None = None
    #: Number metadata looked up by earlier commands (shared by all commands)
    numbers: NumberCache = field(default_factory=NumberCache)
    #: calls per page of a backfill's bulk call details
    backfill_page_size: int = 100
    #: where the command's call.details facts go (call.lookup)
    facts: DetailsSink | None = None
    #: true once the command should stop early and be run again later (its partition
    #: was revoked, or the executor is stopping): long commands check it between requests
    stopping: Callable[[], bool] = lambda: False

    @property
    def gateway(self) -> ExotelGateway:
        return self.account.gateway

    async def publish(self, fact: CallDetails) -> None:
        """One of the command's ``call.details`` facts: written with the command's next
        ledger write (a backfill's next checkpoint, else its outcome)."""
        if self.facts is None:
            raise RuntimeError("this run has no call.details publisher")
        await self.facts.publish(fact)

    def callback_url(self, api: str) -> str:
        """Where Exotel reports on this command (the ingress, with its correlation)."""
        return self.callbacks.url(
            command_id=self.result.command_id, account=self.account.name, api=api
        )
