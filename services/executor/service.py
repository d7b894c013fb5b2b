"""The executor's service layer: one command in, exactly one ``CommandResult`` out.

No Kafka and no HTTP here: Exotel is reached through the ``ExotelGateway`` port (the real
``ExotelClient`` in production, the sandbox behind it in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from contracts.commands import ApiVersion, CallConnect, Command, CommandType, LegHangup, LwbAction
from contracts.results import CommandError, CommandResult, ErrorCode
from services.executor.decoding import InvalidCommand
from services.executor.mapping import (
    CallbackContentType,
    CallbackTarget,
    UnsupportedOption,
    build_connect_request,
)
from services.executor.retry import RetryPolicy, with_retries
from services.exotel.errors import (
    ExotelAuthError,
    ExotelError,
    ExotelNotFound,
    ExotelRateLimited,
    ExotelTimeout,
    ExotelTransientError,
)

log = structlog.get_logger(__name__)


class PlacedCallLike(Protocol):
    @property
    def call_sid(self) -> str: ...


class ExotelGateway(Protocol):
    """What the executor needs from Exotel for one account."""

    async def connect_call_v1(self, form: Mapping[str, str]) -> PlacedCallLike: ...

    async def create_call_ccm(self, api: Any, body: Mapping[str, Any]) -> PlacedCallLike: ...


@dataclass(frozen=True)
class Account:
    """A configured Exotel account as the executor sees it."""

    name: str
    default_api: ApiVersion
    gateway: ExotelGateway


class ExecutorObserver(Protocol):
    def retried(self, command_type: str, error: ExotelError) -> None: ...


@dataclass
class CommandService:
    accounts: Mapping[str, Account]
    callbacks: CallbackTarget
    retry_policy: RetryPolicy
    callback_content_type: CallbackContentType = "multipart/form-data"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    observer: ExecutorObserver | None = None

    async def execute(
        self,
        command: Command | InvalidCommand,
        *,
        command_type: CommandType,
        requested_at: datetime | None = None,
    ) -> CommandResult:
        """Run ``command`` against Exotel and say what happened."""
        outcome = _Outcome(self, command_type, requested_at)
        if isinstance(command, InvalidCommand):
            return outcome.rejected(
                command.command_id,
                command.account,
                _error("invalid_command", command.message, field=command.field),
            )
        account = self.accounts.get(command.account)
        if account is None:
            return outcome.rejected(
                command.command_id,
                command.account,
                _error(
                    "unknown_account",
                    f"invalid field 'account': no Exotel account named {command.account!r} "
                    "is configured",
                    field="account",
                ),
            )
        if isinstance(command, CallConnect):
            return await self._connect(command, account, outcome)
        if isinstance(command, LwbAction | LegHangup):  # pragma: no cover - next issue
            return outcome.rejected(
                command.command_id,
                account.name,
                _error("invalid_command", f"{command_type} is not supported by this executor"),
            )
        raise TypeError(f"unexpected command {type(command).__name__}")  # pragma: no cover

    async def _connect(
        self, command: CallConnect, account: Account, outcome: _Outcome
    ) -> CommandResult:
        api = command.api or account.default_api
        callback_url = self.callbacks.url(
            command_id=command.command_id, account=account.name, api=api
        )
        try:
            request = build_connect_request(
                command,
                api=api,
                callback_url=callback_url,
                callback_content_type=self.callback_content_type,
            )
        except UnsupportedOption as exc:
            return outcome.rejected(
                command.command_id,
                account.name,
                _error("invalid_command", f"invalid field '{exc.field}': {exc}", field=exc.field),
                api=api,
            )

        async def place() -> PlacedCallLike:
            if request.api == "v1":
                return await account.gateway.connect_call_v1(request.form)
            return await account.gateway.create_call_ccm(request.api, request.body)

        attempted = await with_retries(
            place, self.retry_policy, on_retry=self._retried("call.connect")
        )
        if attempted.value is not None:
            return outcome.accepted(
                command.command_id,
                account.name,
                call_sid=attempted.value.call_sid,
                attempts=attempted.attempts,
                api=api,
            )
        assert attempted.error is not None
        return outcome.from_error(
            command.command_id, account.name, attempted.error, attempted.attempts, api=api
        )

    def _retried(self, command_type: str) -> Callable[[ExotelError, int, float], None]:
        def on_retry(error: ExotelError, attempt: int, sleep: float) -> None:
            log.warning(
                "exotel.retry",
                attempt=attempt,
                sleep_seconds=round(sleep, 3),
                http_status=error.http_status,
                exotel_code=error.exotel_code,
                error=error.message,
            )
            if self.observer:
                self.observer.retried(command_type, error)

        return on_retry


def _error(
    code: ErrorCode,
    message: str,
    *,
    field: str | None = None,
    http_status: int | None = None,
    exotel_code: str | None = None,
    retryable: bool = False,
) -> CommandError:
    return CommandError(
        code=code,
        message=message,
        field=field,
        http_status=http_status,
        exotel_code=exotel_code,
        retryable=retryable,
    )


def error_from_exotel(error: ExotelError) -> CommandError:
    """A result's ``error`` from Exotel's own answer."""
    code: ErrorCode
    if isinstance(error, ExotelRateLimited):
        code = "rate_limited"
    elif isinstance(error, ExotelTimeout):
        code = "exotel_timeout"
    elif isinstance(error, ExotelTransientError):
        code = "exotel_unavailable"
    elif isinstance(error, ExotelAuthError):
        code = "exotel_auth"
    elif isinstance(error, ExotelNotFound):
        code = "exotel_not_found"
    else:
        code = "exotel_rejected"
    return _error(
        code,
        error.message,
        http_status=error.http_status,
        exotel_code=error.exotel_code,
        retryable=error.retryable,
    )


@dataclass(frozen=True)
class _Outcome:
    """Builds the one result of a command."""

    service: CommandService
    command_type: CommandType
    requested_at: datetime | None

    def _result(self, command_id: str, account: str, **fields: Any) -> CommandResult:
        return CommandResult(
            command_id=command_id,
            command_type=self.command_type,
            account=account,
            requested_at=self.requested_at,
            completed_at=self.service.clock(),
            **fields,
        )

    def accepted(
        self, command_id: str, account: str, *, attempts: int, **fields: Any
    ) -> CommandResult:
        return self._result(command_id, account, outcome="accepted", attempts=attempts, **fields)

    def rejected(
        self,
        command_id: str,
        account: str,
        error: CommandError,
        *,
        attempts: int = 0,
        **fields: Any,
    ) -> CommandResult:
        return self._result(
            command_id, account, outcome="rejected", attempts=attempts, error=error, **fields
        )

    def from_error(
        self, command_id: str, account: str, error: ExotelError, attempts: int, **fields: Any
    ) -> CommandResult:
        outcome = "failed" if error.retryable else "rejected"
        return self._result(
            command_id,
            account,
            outcome=outcome,
            attempts=attempts,
            error=error_from_exotel(error),
            **fields,
        )
