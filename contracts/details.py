"""``CallDetails``: what Exotel reports about a call after the fact, on ``call.details``
(key ``call_sid``).

Published for every call a ``call.lookup`` finds (``source`` ``lookup`` for one call sid,
``backfill`` for a filter) and, by the executor itself, once per call a few minutes after
its first terminal status, when Exotel has filled in the price (``source`` ``poll``).
Deliveries are at least once: dedupe on ``details_id`` (the same call from the same
source and lookup always has the same one) or on ``call_sid``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.status import NormalisedStatus

DetailsSource = Literal["lookup", "backfill", "poll"]
LegsSource = Literal["details", "legs_api", "v3_legs"]


class CallLeg(BaseModel):
    """One participant of a call."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(
        ge=0,
        description="The participant's place in Exotel's list (0: the leg dialled first; "
        "from call details: 0 `from`, 1 `to`).",
    )
    leg_sid: str | None = Field(default=None, description="The leg's sid, when Exotel gives it.")
    phone_number: str | None = Field(default=None, description="The leg's number.")
    name: str | None = Field(default=None, description="The user's name (v3 legs), if any.")
    origin: str | None = Field(
        default=None,
        description="inbound | outbound (first leg of a connect) | outbound-dial | monitor "
        "(Legs API); `from` / `to` for v3 legs.",
    )
    status: NormalisedStatus | None = Field(default=None, description="Normalised leg status.")
    exotel_status: str | None = Field(default=None, description="The leg status Exotel gave.")
    on_call_duration: int | None = Field(default=None, ge=0, description="Seconds on call.")
    started_at: AwareDatetime | None = Field(default=None, description="When the leg began.")
    ended_at: AwareDatetime | None = Field(default=None, description="When the leg ended.")


class Agent(BaseModel):
    """The agent (Exotel user) assigned to the call, when the API names one."""

    model_config = ConfigDict(frozen=True)

    user_id: str | None = Field(default=None, description="Exotel's user id.")
    name: str | None = Field(default=None, description="The user's name.")
    number: str | None = Field(default=None, description="The agent's number or SIP URI.")
    group_id: str | None = Field(default=None, description="The user's group, if any.")
    group_name: str | None = Field(default=None, description="The group's name.")


class CallDetails(BaseModel):
    """One call's details: price, durations, recordings, digits, agent and every leg."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    details_id: str = Field(
        description="Stable id of this fact (call, source and lookup): the dedupe key."
    )
    call_sid: str = Field(description="The call's sid (the message key).")
    source: DetailsSource = Field(
        description="lookup: a call.lookup of this call; backfill: a call.lookup filter; "
        "poll: fetched by the executor a few minutes after the call's terminal status."
    )
    lookup_id: str | None = Field(
        default=None, description="The call.lookup command's `command_id` (lookup, backfill)."
    )
    command_id: str | None = Field(
        default=None, description="The call.connect that placed the call, when known."
    )
    account: str = Field(description="Configured account name.")
    api: Literal["v1", "v2", "v3"] = Field(description="Which API's call details these are.")
    status: NormalisedStatus = Field(description="The call's status, normalised.")
    exotel_status: str | None = Field(default=None, description="The status Exotel gave.")
    finished: bool = Field(
        description="Exotel will not change the call's outcome any more (its price may still "
        "be filled in, about two minutes after the end)."
    )
    direction: str | None = Field(
        default=None, description="inbound | outbound-api | outbound-dial | outbound."
    )
    from_: str | None = Field(default=None, alias="from", description="Number dialled first.")
    to: str | None = Field(default=None, description="Number connected second.")
    caller_id: str | None = Field(default=None, description="The ExoPhone / virtual number.")
    created_at: AwareDatetime | None = Field(default=None, description="When it was requested.")
    started_at: AwareDatetime | None = Field(default=None, description="When it started.")
    ended_at: AwareDatetime | None = Field(default=None, description="When it ended.")
    duration: int | None = Field(default=None, ge=0, description="Call duration in seconds.")
    conversation_duration: int | None = Field(
        default=None, ge=0, description="Seconds both parties talked (v2/v3: total talk time)."
    )
    price: str | None = Field(
        default=None,
        description="What Exotel charged, a decimal string in the account's billing currency "
        "(e.g. `1.500`); null until Exotel fills it in (v1 call details only).",
    )
    answered_by: str | None = Field(default=None, description="`human` when answered (v1).")
    recordings: list[str] = Field(
        default_factory=list, description="Every recording's URL (empty when not recorded)."
    )
    digits: str | None = Field(
        default=None, description="DTMF digits pressed, `-` between applets (v2/v3)."
    )
    agent: Agent | None = Field(default=None, description="The assigned agent (v2/v3).")
    custom_field: str | None = Field(default=None, description="Echo of the command's value.")
    legs: list[CallLeg] = Field(default_factory=list, description="Every participant.")
    legs_source: LegsSource = Field(
        description="Where `legs` come from: details (the two legs of call details), "
        "legs_api (every participant, v1 Legs API), v3_legs (every participant, v3)."
    )
    fetched_at: AwareDatetime = Field(description="When voicebus read these details.")
    raw: dict[str, Any] = Field(
        description="Exotel's answers as received: `details` (and `v1` for a v2/v3 call, "
        "for its price), `legs` when asked."
    )
