"""``CallStatusEvent``: a status callback (or a poll) turned into a fact on ``call.status``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

NormalisedStatus = Literal[
    "queued",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "no-answer",
    "failed",
    "canceled",
    "unknown",
]
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "busy", "no-answer", "failed", "canceled"}
)


class LegStatus(BaseModel):
    """One leg attempt of a call."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="Order of the attempt (0: `from` leg, 1: `to` leg).")
    status: NormalisedStatus | None = Field(
        default=None, description="Normalised leg status; null when the leg was never attempted."
    )
    exotel_status: str | None = Field(default=None, description="Raw leg status from Exotel.")
    on_call_duration: int | None = Field(default=None, ge=0, description="Seconds on call.")
    leg_sid: str | None = Field(default=None, description="Leg sid, when Exotel gives one.")
    phone_number: str | None = Field(default=None, description="The leg's number, if known.")
    origin: str | None = Field(
        default=None, description="inbound | outbound | outbound-dial | monitor."
    )


class CallStatusEvent(BaseModel):
    """What Exotel told us about a call or one of its legs."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    event_id: str = Field(
        description="Stable id: the same callback delivered twice has the same id (dedupe key)."
    )
    call_sid: str = Field(description="The call's sid (the message key).")
    leg_sid: str | None = Field(
        default=None, description="Set for leg events (monitor legs and other legs)."
    )
    event_type: Literal["answered", "terminal"] = Field(description="Which callback this was.")
    status: NormalisedStatus = Field(description="Status normalised across API versions.")
    exotel_status: str | None = Field(default=None, description="The raw status Exotel sent.")
    direction: str | None = Field(default=None, description="inbound | outbound-api | ...")
    from_: str | None = Field(default=None, alias="from", description="Number dialled first.")
    to: str | None = Field(default=None, description="Number connected second.")
    caller_id: str | None = Field(default=None, description="The ExoPhone / virtual number.")
    started_at: AwareDatetime | None = Field(default=None, description="ISO 8601 with offset.")
    ended_at: AwareDatetime | None = Field(default=None, description="ISO 8601 with offset.")
    conversation_duration: int | None = Field(
        default=None, ge=0, description="Seconds both parties talked."
    )
    recording_url: str | None = Field(default=None, description="Recording, when recorded.")
    legs: list[LegStatus] = Field(default_factory=list, description="Per-leg detail.")
    origin: str | None = Field(default=None, description="Leg events: the leg's origin.")
    last_action: str | None = Field(
        default=None, description="Monitor leg events: listen | whisper | barge | hangup."
    )
    custom_field: str | None = Field(default=None, description="Echo of the command's value.")
    command_id: str | None = Field(default=None, description="Correlated command, if known.")
    account: str | None = Field(default=None, description="Configured account name.")
    api: Literal["v1", "v2", "v3", "lwb"] = Field(description="Which API's callback this was.")
    source: Literal["callback", "poll"] = Field(
        default="callback", description="callback: Exotel called us; poll: we asked Exotel."
    )
    received_at: AwareDatetime = Field(description="When voicebus received it.")
    raw: dict[str, Any] = Field(description="The payload as received (after form decoding).")
