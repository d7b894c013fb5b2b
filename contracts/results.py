"""``CommandResult``: exactly one per readable command, on ``<command topic>.result``,
with a typed block for the commands that answer with data (``number`` for
``number.lookup``, ``lookup`` for ``call.lookup``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.commands import CommandType

Outcome = Literal["accepted", "rejected", "failed"]
Dnd = Literal["yes", "no", "unavailable"]

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
    "dnd_blocked",
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


class NumberInfo(BaseModel):
    """What Exotel's Number metadata says about a number (``number.lookup``; and the `to`
    number of a ``call.connect`` whose DND was checked)."""

    model_config = ConfigDict(frozen=True)

    number: str = Field(description="The number as it was asked about.")
    phone_number: str | None = Field(
        default=None, description="Exotel's reformatted number (e.g. `09876543210`)."
    )
    circle: str | None = Field(
        default=None, description="Telecom circle code (`GJ`, `MU`, `DL`, ...), as Exotel gives it."
    )
    circle_name: str | None = Field(default=None, description="The circle's name.")
    type: str | None = Field(default=None, description="`Mobile` or `Landline`, as Exotel says.")
    operator: str | None = Field(
        default=None, description="Operator code (`A` Airtel, `V` Vodafone, `R` Reliance, ...)."
    )
    operator_name: str | None = Field(default=None, description="The operator's name.")
    dnd: Dnd = Field(
        description="Registered on India's Do-Not-Disturb list: yes, no, or unavailable "
        "(Exotel could not tell)."
    )
    cached: bool = Field(
        description="Served from the executor's cache (no request to Exotel for this command)."
    )
    looked_up_at: AwareDatetime = Field(description="When Exotel gave this answer.")


class LookupSummary(BaseModel):
    """What a ``call.lookup`` published on ``call.details``."""

    model_config = ConfigDict(frozen=True)

    calls: int = Field(ge=0, description="CallDetails facts published for this command.")
    pages: int = Field(ge=0, description="Pages of bulk call details read (0 for one call).")
    restarted: bool = Field(
        default=False,
        description="An earlier run of this backfill was interrupted (a crash, a rebalance): "
        "it resumed after its last complete page. Without Kafka transactions (Tansu) the "
        "calls of the page it was on may have been published twice; dedupe on `call_sid` "
        "(or `details_id`).",
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
    number: NumberInfo | None = Field(
        default=None,
        description="number.lookup: the number's metadata; call.connect: the `to` number's, "
        "when its DND was checked.",
    )
    lookup: LookupSummary | None = Field(
        default=None, description="call.lookup: how many calls were published on call.details."
    )
