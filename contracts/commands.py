"""Commands other services publish: ``call.connect``, ``lwb.action``, ``leg.hangup``.

Field names are snake_case; the executor maps them onto each Exotel API's own names.
Unknown fields are refused (``extra="forbid"``) so that a producer's typo becomes a
``rejected`` result naming the field instead of a silently different call.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

CommandType = Literal["call.connect", "lwb.action", "leg.hangup"]
ApiVersion = Literal["v1", "v2", "v3"]
StatusEvent = Literal["answered", "terminal"]

CommandId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="Idempotency key chosen by the producer: the same id is never executed twice.",
    ),
]
PhoneNumber = Annotated[
    str,
    Field(
        min_length=3,
        max_length=64,
        pattern=r"^(\+?[0-9]{3,20}|sip:[A-Za-z0-9._@:+-]{1,58})$",
        description="E.164 number (preferred), a local number with STD code, or a SIP URI.",
    ),
]
Sid = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="An Exotel sid (call or leg identifier).",
    ),
]
AccountName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of a configured Exotel account (not its sid).",
    ),
]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    command_id: CommandId
    account: AccountName = "default"


class Playback(BaseModel):
    """One v3 ``playback`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["start", "end"] = Field(description="When the playback is heard.")
    to: Literal["callee", "both"] = Field(default="callee", description="Who hears it.")
    value: HttpUrl = Field(description="URL of the wav file to play.")


class Streaming(BaseModel):
    """v3 ``streaming``: audio streamed to a websocket."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=2048, description="wss:// URL receiving the audio.")
    begin: Literal["from_leg_connect", "to_leg_connect"] = Field(
        default="from_leg_connect", description="When streaming starts."
    )


def _default_status_events() -> list[StatusEvent]:
    return ["answered", "terminal"]


class CallConnect(_Command):
    """Place a call: ring ``from`` (the agent) first, then connect ``to`` or a call flow."""

    from_: PhoneNumber = Field(alias="from", description="Number dialled first (agent / user).")
    to: PhoneNumber | None = Field(
        default=None, description="Customer number connected after `from` answers."
    )
    flow_url: HttpUrl | None = Field(
        default=None,
        description="Connect `from` to this Exotel call flow instead of `to` (v1 only): "
        "http://my.exotel.com/{sid}/exoml/start_voice/{app_id}. The flow API takes no "
        "recording, wait_url, playback or status_events: a command setting them is rejected "
        "naming the field.",
    )
    caller_id: PhoneNumber = Field(description="The ExoPhone (virtual number) shown to both legs.")
    api: ApiVersion | None = Field(
        default=None, description="Exotel API to use; default from the account's configuration."
    )
    record: bool | None = Field(default=None, description="Record the conversation.")
    recording_channels: Literal["single", "dual"] | None = Field(
        default=None, description="single: both legs in one channel; dual: one channel each."
    )
    recording_format: Literal["mp3", "mp3-hq"] | None = Field(
        default=None, description="Recording quality (mp3-hq must be enabled on the account)."
    )
    time_limit: int | None = Field(
        default=None, ge=1, le=14400, description="Maximum call duration in seconds (max 4 h)."
    )
    time_out: int | None = Field(
        default=None, ge=1, le=3600, description="Seconds to ring each leg before giving up."
    )
    wait_url: HttpUrl | None = Field(
        default=None, description="wav played to `from` while `to` is being dialled."
    )
    call_type: Literal["trans"] | None = Field(
        default=None, description="`trans` for transactional calls (v1)."
    )
    custom_field: str | None = Field(
        default=None,
        max_length=1024,
        description="Application value (order id...) echoed in the terminal status callback; "
        "with `flow_url`, Exotel passes it to the flow's Passthru (and Greeting) applets "
        "instead (a `call.status` flow event's `custom_field`), not to the terminal callback.",
    )
    status_events: list[StatusEvent] = Field(
        default_factory=_default_status_events,
        min_length=1,
        max_length=2,
        description="Which status callbacks become `call.status` facts.",
    )
    start_playback_to: Literal["callee", "both"] | None = Field(
        default=None, description="Who hears `start_playback_value` before the call connects."
    )
    start_playback_value: HttpUrl | None = Field(
        default=None, description="wav played just before the call connects."
    )
    playback: list[Playback] | None = Field(
        default=None, max_length=4, description="v3 playback entries."
    )
    streaming: Streaming | None = Field(default=None, description="v3 audio streaming.")
    state_management: bool | None = Field(
        default=None, description="v3: check the `from` number's busy state before calling."
    )

    @model_validator(mode="after")
    def _destination(self) -> CallConnect:
        if (self.to is None) == (self.flow_url is None):
            raise ValueError("exactly one of 'to' or 'flow_url' must be given")
        if self.flow_url is not None and self.api not in (None, "v1"):
            raise ValueError("'flow_url' (connect to a call flow) is only offered by api v1")
        if len(set(self.status_events)) != len(self.status_events):
            raise ValueError("'status_events' has duplicates")
        return self


class LwbAction(_Command):
    """Listen, whisper or barge into a live call as a supervisor."""

    call_sid: Sid = Field(description="The live call to monitor.")
    action: Literal["listen", "whisper", "barge"] = Field(description="Monitor mode.")
    supervisor: PhoneNumber = Field(description="Number to ring for the supervisor.")
    target_leg_sid: Sid | None = Field(
        default=None,
        description="Leg to act on; when absent the executor reads the active legs and picks "
        "the agent leg.",
    )
    monitor_leg_sid: Sid | None = Field(
        default=None,
        description="Existing monitor leg to upgrade with PUT (listen->whisper, whisper->barge, "
        "listen->barge only).",
    )
    custom_field: str | None = Field(
        default=None, max_length=1024, description="Echoed in the monitor leg's terminal callback."
    )

    @model_validator(mode="after")
    def _upgrade(self) -> LwbAction:
        if self.monitor_leg_sid is not None and self.action == "listen":
            raise ValueError("'action' listen cannot be an upgrade of 'monitor_leg_sid'")
        return self


class LegHangup(_Command):
    """Hang up one leg (or all legs) of a call."""

    call_sid: Sid = Field(description="The call whose leg is hung up.")
    leg_sid: Sid | None = Field(default=None, description="The leg to hang up.")
    leg: Literal["agent", "customer", "monitor", "all"] | None = Field(
        default=None, description="Selector resolved through the call's active legs."
    )

    @model_validator(mode="after")
    def _one_target(self) -> LegHangup:
        if (self.leg_sid is None) == (self.leg is None):
            raise ValueError("exactly one of 'leg_sid' or 'leg' must be given")
        return self


Command = CallConnect | LwbAction | LegHangup
