"""A command's one result, and the errors it can carry: built here and nowhere else.

Every error code comes from the class of what went wrong (``code``): Exotel's errors
(:mod:`services.exotel.errors`), an option the API does not offer
(:class:`~services.executor.mapping.connect.UnsupportedOption`), no single target leg
(:class:`~services.executor.supervision.NoTargetLeg`), a refused monitor-mode change
(:class:`~services.executor.supervision.IllegalTransition`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict, Unpack

from contracts.commands import ApiVersion, CommandType
from contracts.results import CommandError, CommandResult, ErrorCode, Outcome
from services.executor.mapping.connect import UnsupportedOption
from services.executor.supervision import IllegalTransition, NoTargetLeg
from services.exotel.errors import ExotelError


class Where(TypedDict, total=False):
    """What a result says the command acted on."""

    call_sid: str
    leg_sid: str
    api: ApiVersion


def _none_yet() -> int:
    return 0


@dataclass(frozen=True)
class Outcomes:
    """Builds the result of one command. ``attempts`` says how many HTTP attempts the
    command has made to Exotel so far (its :class:`~.exchange.Exchange` counts them)."""

    command_type: CommandType
    command_id: str
    account: str
    requested_at: datetime | None
    clock: Callable[[], datetime]
    attempts: Callable[[], int] = _none_yet

    def accepted(self, **where: Unpack[Where]) -> CommandResult:
        return self._result("accepted", None, where)

    def rejected(self, error: CommandError, **where: Unpack[Where]) -> CommandResult:
        """Refused: it never will succeed as it stands."""
        return self._result("rejected", error, where)

    def failed(self, error: CommandError, **where: Unpack[Where]) -> CommandResult:
        """Not done: retries exhausted, or in doubt and deliberately not sent again."""
        return self._result("failed", error, where)

    def exotel_refused(
        self, error: ExotelError, *, note: str | None = None, **where: Unpack[Where]
    ) -> CommandResult:
        """Exotel's final answer: failed when retrying could succeed, else rejected."""
        outcome: Outcome = "failed" if error.retryable else "rejected"
        return self._result(outcome, from_exotel(error, note), where)

    def _result(self, outcome: Outcome, error: CommandError | None, where: Where) -> CommandResult:
        return CommandResult(
            command_id=self.command_id,
            command_type=self.command_type,
            outcome=outcome,
            account=self.account,
            call_sid=where.get("call_sid"),
            leg_sid=where.get("leg_sid"),
            api=where.get("api"),
            attempts=self.attempts(),
            error=error,
            requested_at=self.requested_at,
            completed_at=self.clock(),
        )


# ------------------------------------------------------------------ errors


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


def from_exotel(error: ExotelError, note: str | None = None) -> CommandError:
    """Exotel's own answer (``note`` prefixes what was done before it)."""
    return _error(
        error.code,
        (note or "") + error.message,
        http_status=error.http_status,
        exotel_code=error.exotel_code,
        retryable=error.retryable,
    )


def invalid_command(message: str, field: str) -> CommandError:
    return _error("invalid_command", message, field=field)


def unknown_account(name: str) -> CommandError:
    return _error(
        "unknown_account",
        f"invalid field 'account': no Exotel account named {name!r} is configured",
        field="account",
    )


def unsupported(exc: UnsupportedOption) -> CommandError:
    return _error(exc.code, f"invalid field '{exc.field}': {exc}", field=exc.field)


def not_a_monitor_leg(leg_sid: str, origin: str) -> CommandError:
    return _error(
        "invalid_command",
        f"invalid field 'monitor_leg_sid': leg {leg_sid} is not a monitor leg "
        f"(origin {origin or 'unknown'!r})",
        field="monitor_leg_sid",
    )


def no_target(exc: NoTargetLeg, what: str, field: str) -> CommandError:
    return _error(exc.code, f"{what}: no target leg ({exc.reason}): {exc.message}", field=field)


def illegal_transition(exc: IllegalTransition) -> CommandError:
    return _error(exc.code, str(exc), field="action")


def in_doubt(message: str) -> CommandError:
    return _error("in_doubt", message)
