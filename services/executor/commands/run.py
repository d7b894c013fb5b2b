"""What a command handler works with: the account, its Exotel exchange, the result builder.

One :class:`CommandRun` per command, built by the service; nothing in it calls back into
the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from contracts.commands import ApiVersion
from contracts.results import CommandError, CommandResult
from services.executor.commands.exchange import Exchange
from services.executor.commands.outcomes import Outcomes
from services.executor.mapping.callbacks import CallbackContentType, CallbackTarget
from services.executor.ports import Account, ExotelGateway, InDoubt
from services.exotel.errors import ExotelError


@dataclass
class CommandRun:
    """One command's run. ``in_doubt``: an earlier run recorded its intent and stopped;
    the request may have reached Exotel, so the handler reconciles instead of resending."""

    account: Account
    exotel: Exchange
    results: Outcomes
    callbacks: CallbackTarget
    callback_content_type: CallbackContentType
    reconcile_window_seconds: float
    reconcile_poll_seconds: float
    clock: Callable[[], datetime]
    in_doubt: InDoubt | None = None

    @property
    def gateway(self) -> ExotelGateway:
        return self.account.gateway

    def callback_url(self, api: str) -> str:
        """Where Exotel reports on this command (the ingress, with its correlation)."""
        return self.callbacks.url(
            command_id=self.results.command_id, account=self.account.name, api=api
        )

    # The result, with the attempts made so far.

    def accepted(
        self,
        *,
        call_sid: str | None = None,
        leg_sid: str | None = None,
        api: ApiVersion | None = None,
    ) -> CommandResult:
        return self.results.accepted(
            self.exotel.attempts, call_sid=call_sid, leg_sid=leg_sid, api=api
        )

    def rejected(
        self,
        error: CommandError,
        *,
        call_sid: str | None = None,
        leg_sid: str | None = None,
        api: ApiVersion | None = None,
    ) -> CommandResult:
        return self.results.rejected(
            error, self.exotel.attempts, call_sid=call_sid, leg_sid=leg_sid, api=api
        )

    def failed(
        self,
        error: CommandError,
        *,
        call_sid: str | None = None,
        api: ApiVersion | None = None,
    ) -> CommandResult:
        return self.results.failed(error, self.exotel.attempts, call_sid=call_sid, api=api)

    def exotel_refused(
        self,
        error: ExotelError,
        *,
        note: str | None = None,
        call_sid: str | None = None,
        leg_sid: str | None = None,
        api: ApiVersion | None = None,
    ) -> CommandResult:
        return self.results.exotel_refused(
            error, self.exotel.attempts, note=note, call_sid=call_sid, leg_sid=leg_sid, api=api
        )
