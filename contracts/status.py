"""``CallStatusEvent``: a status callback, a call flow's Passthru notification (or a poll)
turned into a fact on ``call.status``."""

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
#: ``answered`` / ``terminal``: status callbacks (and polls); ``flow``: a call flow's
#: Passthru applet told us where the call is in its flow (never the call's end).
EventType = Literal["answered", "terminal", "flow"]
#: Which Exotel interface the fact came from: a call API's callback (v1, v2, v3), a
#: monitor leg's callback (lwb), or a call flow's Passthru applet (passthru).
StatusApi = Literal["v1", "v2", "v3", "lwb", "passthru"]


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


class AssignedAgent(BaseModel):
    """v2's ``assigned_agent_details``: the primary agent Exotel assigned to the call."""

    model_config = ConfigDict(frozen=True)

    user_id: str | None = Field(default=None, description="Exotel's user id of the agent.")
    user_name: str | None = Field(default=None, description="The agent's name on Exotel.")
    group_id: str | None = Field(default=None, description="The agent's group id, if any.")
    group_name: str | None = Field(default=None, description="The agent's group name, if any.")


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
    event_type: EventType = Field(
        description="Which callback this was: answered, terminal (the call's or, with "
        "leg_sid, a leg's end), or flow: a call flow's Passthru applet reporting where the "
        "call is in its flow (an inbound call's first sign; never the call's end, even when "
        "status says completed: the call watch or a terminal callback tells the end)."
    )
    status: NormalisedStatus = Field(
        description="Status normalised across API versions. v2/v3 `to_leg_unanswered` and "
        "`from_leg_unanswered` do not tell busy from no-answer (Exotel: 'switched off, not "
        "reachable, no-answer, busy, connection failed etc.'): both are `no-answer` here and "
        "`exotel_status` keeps Exotel's word. Flow events: the Connect applet's CallStatus "
        "when sent, else the CallType where it means a status (completed -> completed, "
        "incomplete -> no-answer, client-hangup -> canceled), else `unknown` (call-attempt, "
        "voicemail: see `call_type`)."
    )
    exotel_status: str | None = Field(
        default=None,
        description="The raw status Exotel sent (flow events: CallStatus, else CallType).",
    )
    direction: str | None = Field(
        default=None,
        description="inbound | outbound-api | outbound-dial | outbound | ... (a Passthru's "
        "`incoming` is `inbound` here; `raw` keeps Exotel's word).",
    )
    from_: str | None = Field(
        default=None,
        alias="from",
        description="Number dialled first; inbound calls: the caller (Passthru CallFrom).",
    )
    to: str | None = Field(
        default=None,
        description="Number connected second; inbound calls: the ExoPhone the call landed on "
        "(Passthru CallTo).",
    )
    caller_id: str | None = Field(default=None, description="The ExoPhone / virtual number.")
    started_at: AwareDatetime | None = Field(default=None, description="ISO 8601 with offset.")
    ended_at: AwareDatetime | None = Field(default=None, description="ISO 8601 with offset.")
    conversation_duration: int | None = Field(
        default=None, ge=0, description="Seconds both parties talked."
    )
    recording_url: str | None = Field(
        default=None, description="Recording, when recorded (the first of `recording_urls`)."
    )
    recording_urls: list[str] = Field(
        default_factory=list,
        description="Every recording of the call, in Exotel's order (v2/v3 `recordings`; "
        "one at most from v1, LWB and Passthru).",
    )
    total_talk_time: int | None = Field(
        default=None,
        ge=0,
        description="v2/v3: seconds the customer was on call, summed over every conversation "
        "(a transfer counts both); `conversation_duration` carries the same value for v2/v3.",
    )
    digits: str | None = Field(
        default=None,
        description="DTMF digits the caller pressed: v2/v3 `digits` (applets separated by "
        "'-'), or a Passthru's `digits` with Exotel's double quotes removed.",
    )
    app_id: str | None = Field(
        default=None,
        description="The call flow (app) the call started in: v2/v3 `app_id`, a Passthru's "
        "`flow_id`; null when no flow was used.",
    )
    app_name: str | None = Field(
        default=None, description="v2/v3 `app_name`: the name of that call flow."
    )
    call_type: str | None = Field(
        default=None,
        description="Flow events: Exotel's CallType, where the call is in its flow "
        "(call-attempt, completed, client-hangup, incomplete, voicemail).",
    )
    dial_whom_number: str | None = Field(
        default=None,
        description="Flow events: the agent's number the Connect applet dialled (Passthru "
        "DialWhomNumber), when it has dialled one.",
    )
    dial_call_duration: int | None = Field(
        default=None,
        ge=0,
        description="Flow events: seconds from the dial-out to the agent until that leg "
        "ended (Passthru DialCallDuration; 0 before any dial-out).",
    )
    assigned_agent: AssignedAgent | None = Field(
        default=None, description="v2: the agent Exotel assigned (assigned_agent_details)."
    )
    legs: list[LegStatus] = Field(default_factory=list, description="Per-leg detail.")
    origin: str | None = Field(default=None, description="Leg events: the leg's origin.")
    last_action: str | None = Field(
        default=None, description="Monitor leg events: listen | whisper | barge | hangup."
    )
    custom_field: str | None = Field(
        default=None,
        description="Echo of the command's value (terminal callbacks; flow events: the "
        "CustomField of a connect-to-flow call, which Exotel gives the flow's Passthru).",
    )
    command_id: str | None = Field(default=None, description="Correlated command, if known.")
    account: str | None = Field(default=None, description="Configured account name.")
    api: StatusApi = Field(
        description="Which API's callback this was (passthru: a call flow's Passthru applet)."
    )
    source: Literal["callback", "poll"] = Field(
        default="callback", description="callback: Exotel called us; poll: we asked Exotel."
    )
    received_at: AwareDatetime = Field(description="When voicebus received it.")
    raw: dict[str, Any] = Field(
        description="The payload as received (after form decoding; a Passthru: every query "
        "parameter Exotel sent, tenant_id and the rest included)."
    )
