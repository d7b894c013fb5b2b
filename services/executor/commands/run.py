"""What a command handler works with: the account, its Exotel exchange, its result.

One :class:`CommandRun` per command, built by the service; nothing in it calls back into
the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.executor.commands.exchange import Exchange
from services.executor.commands.outcomes import Outcomes
from services.executor.mapping.callbacks import CallbackContentType, CallbackTarget
from services.executor.ports import Account, ExotelGateway, InDoubt, StatusEvidence


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

    @property
    def gateway(self) -> ExotelGateway:
        return self.account.gateway

    def callback_url(self, api: str) -> str:
        """Where Exotel reports on this command (the ingress, with its correlation)."""
        return self.callbacks.url(
            command_id=self.result.command_id, account=self.account.name, api=api
        )
