"""The executor's service layer: one command in, exactly one ``CommandResult`` out.

No Kafka and no HTTP here: Exotel is reached through the ``ExotelGateway`` port
(:mod:`services.executor.ports`; the real ``ExotelClient`` in production, a fake in the
broker-free tests). The service refuses what no handler should see (an invalid command,
an unknown account) and hands the rest to the command's handler
(:data:`services.executor.commands.HANDLERS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from contracts.commands import Command, CommandType
from contracts.decoding import InvalidCommand
from contracts.results import CommandResult
from services.executor.commands import HANDLERS, outcomes
from services.executor.commands.exchange import Exchange
from services.executor.commands.outcomes import Outcomes
from services.executor.commands.run import CommandRun
from services.executor.mapping.callbacks import CallbackContentType, CallbackTarget
from services.executor.numbers import NumberCache
from services.executor.ports import (
    Account,
    DetailsSink,
    EffectJournal,
    ExecutorObserver,
    InDoubt,
    StatusEvidence,
)
from services.executor.retry import RetryPolicy

__all__ = ["Account", "CommandService"]


@dataclass
class CommandService:
    accounts: Mapping[str, Account]
    callbacks: CallbackTarget
    retry_policy: RetryPolicy
    callback_content_type: CallbackContentType = "multipart/form-data"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    observer: ExecutorObserver | None = None
    journal: EffectJournal | None = None
    reconcile_window_seconds: float = 120.0
    reconcile_poll_seconds: float = 2.0
    numbers: NumberCache = field(default_factory=NumberCache)
    backfill_page_size: int = 100
    statuses: StatusEvidence | None = None

    async def execute(
        self,
        command: Command | InvalidCommand,
        *,
        command_type: CommandType,
        requested_at: datetime | None = None,
        in_doubt: InDoubt | None = None,
        facts: DetailsSink | None = None,
        stopping: Callable[[], bool] = lambda: False,
        journal: EffectJournal | None = None,
    ) -> CommandResult:
        """Run ``command`` against Exotel and say what happened.

        ``in_doubt``: an earlier run recorded its intent and then stopped (crash,
        rebalance); the request may have reached Exotel, so the command is reconciled
        against Exotel instead of being sent again blindly. ``journal``: where this
        command's intent goes (its partition's ledger), instead of the service's own.
        ``facts``: where the command's ``call.details`` facts go. ``stopping``: true once
        the command should stop and be run again later (a long command then raises
        :class:`~.commands.run.Interrupted`).
        """
        refused = Outcomes(
            command_type, command.command_id, command.account, requested_at, self.clock
        )
        if isinstance(command, InvalidCommand):
            return refused.rejected(outcomes.invalid_command(command.message, command.field))
        account = self.accounts.get(command.account)
        if account is None:
            return refused.rejected(outcomes.unknown_account(command.account))
        exotel = Exchange(
            account.gateway,
            self.retry_policy,
            command_id=command.command_id,
            command_type=command_type,
            account=account.name,
            journal=journal if journal is not None else self.journal,
            observer=self.observer,
        )
        run = CommandRun(
            account=account,
            exotel=exotel,
            result=replace(refused, attempts=lambda: exotel.attempts),
            callbacks=self.callbacks,
            callback_content_type=self.callback_content_type,
            reconcile_window_seconds=self.reconcile_window_seconds,
            reconcile_poll_seconds=self.reconcile_poll_seconds,
            clock=self.clock,
            in_doubt=in_doubt,
            numbers=self.numbers,
            backfill_page_size=self.backfill_page_size,
            facts=facts,
            stopping=stopping,
            statuses=self.statuses,
        )
        return await HANDLERS[command_type](command, run)
