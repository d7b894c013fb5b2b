"""``CommandResult``: exactly one per readable command, on ``<command topic>.result``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.commands import CommandType

Outcome = Literal["accepted", "rejected", "failed"]

ErrorCode = Literal[
    "invalid_command",
    "unknown_account",
    "exotel_rejected",
    "exotel_not_found",
    "exotel_auth",
    "exotel_unavailable",
    "exotel_timeout",
    "rate_limited",
    "illegal_transition",
    "no_target_leg",
    "in_doubt",
]


class CommandError(BaseModel):
    """Why a command was rejected or failed."""

    model_config = ConfigDict(frozen=True)

    code: ErrorCode = Field(description="voicebus's own error code.")
    message: str = Field(description="Readable reason; Exotel's own message when it gave one.")
    http_status: int | None = Field(default=None, description="Exotel's HTTP status, if any.")
    exotel_code: str | None = Field(
        default=None, description="Exotel's error code (e.g. `10706`), if it gave one."
    )
    retryable: bool = Field(description="Whether sending the same command again could succeed.")
    field: str | None = Field(
        default=None,
        description="For `invalid_command`: the dotted path of the first invalid field "
        "(an addition to the design contract's error fields).",
    )


class CommandResult(BaseModel):
    """What happened to a command."""

    model_config = ConfigDict(frozen=True)

    command_id: str = Field(description="The command's idempotency key.")
    command_type: CommandType = Field(description="Which command this answers.")
    outcome: Outcome = Field(
        description="accepted: Exotel took it; rejected: it never will; failed: retries exhausted."
    )
    call_sid: str | None = Field(default=None, description="The call's sid, when known.")
    leg_sid: str | None = Field(
        default=None, description="The leg acted on (monitor leg for lwb.action, hung-up leg)."
    )
    account: str = Field(description="Configured account name the command ran under.")
    api: Literal["v1", "v2", "v3"] | None = Field(
        default=None, description="Exotel API used for call.connect."
    )
    attempts: int = Field(ge=0, description="HTTP attempts made to Exotel (0 if none).")
    error: CommandError | None = Field(default=None, description="Null when accepted.")
    requested_at: AwareDatetime | None = Field(
        default=None, description="When the command was published (Kafka timestamp)."
    )
    completed_at: datetime = Field(description="When the outcome was decided.")
