"""The sandbox's memory: calls, their legs and the callbacks sent about them."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from services.sandbox import numbers

Api = Literal["v1", "v2", "v3"]
Role = Literal["agent", "customer", "monitor"]
#: ``flow``: an inbound call in its call flow, before or after the Connect applet
Phase = Literal["queued", "flow", "agent_ringing", "customer_ringing", "connected", "ended"]

TERMINAL_LEG_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
ORIGINS: dict[Role, str] = {"agent": "outbound", "customer": "outbound-dial", "monitor": "monitor"}
#: An inbound call: the caller dialled the ExoPhone, the flow's Connect applet dialled the
#: agent out (v1-call-legs.txt, "Origin").
INBOUND_ORIGINS: dict[Role, str] = {
    "agent": "outbound-dial",
    "customer": "inbound",
    "monitor": "monitor",
}


def new_sid() -> str:
    """A 32-hex-character identifier, like Exotel's call and leg sids."""
    return uuid.uuid4().hex


def whole_seconds(start: datetime | None, end: datetime | None) -> int:
    """Seconds between two instants, rounded up (a leg that talked talked >= 1 s)."""
    if start is None or end is None:
        return 0
    return max(0, math.ceil((end - start).total_seconds() - 1e-6))


@dataclass
class Subscription:
    """Where and how to tell someone about an event of a call or leg."""

    event: str  # "answered" | "terminal" | "default" (v1 without StatusCallbackEvents)
    url: str
    method: str = "POST"
    content_type: str = "multipart/form-data"


@dataclass
class DeliveryAttempt:
    """One HTTP attempt to deliver a callback."""

    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    elapsed_seconds: float


@dataclass
class CallbackRecord:
    """A callback the sandbox sent (or is sending), with every attempt's answer."""

    event: str
    url: str
    method: str
    content_type: str | None
    payload: dict[str, Any]
    body: bytes
    leg_sid: str | None = None
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    delivered: bool = False
    finished: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set once finished


@dataclass
class Leg:
    """One party of a call: the agent (From), the customer (To) or a supervisor."""

    sid: str
    call_sid: str
    role: Role
    phone_number: str
    created: datetime
    updated: datetime
    status: str | None = None  # None: not attempted (yet)
    last_action: str = ""
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    target_leg_sid: str | None = None
    custom_field: str | None = None
    subscriptions: list[Subscription] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    inbound: bool = False  # a leg of an inbound call (its origins differ)

    @property
    def origin(self) -> str:
        return (INBOUND_ORIGINS if self.inbound else ORIGINS)[self.role]

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_LEG_STATUSES

    @property
    def active(self) -> bool:
        return self.status == "in-progress"

    def on_call_duration(self) -> int:
        return whole_seconds(self.answered_at, self.ended_at)

    def finish(self, status: str, at: datetime) -> None:
        """End the leg (no-op when it has already ended)."""
        if self.ended:
            return
        self.status = status
        self.ended_at = at
        self.updated = at
        self.wake.set()


@dataclass
class Call:
    """A call placed through one of the APIs."""

    sid: str
    account_sid: str
    api: Api
    from_number: str
    to_number: str | None
    caller_id: str
    created: datetime
    flow_url: str | None = None
    updated: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    status: str = "queued"  # v1 vocabulary
    ccm_status: str | None = None  # v2/v3 vocabulary, set when the call ends
    phase: Phase = "queued"
    end_cause: str | None = None
    record: bool = False
    recording_channels: str | None = None
    recording_format: str | None = None
    time_limit: int | None = None
    time_out: int | None = None
    custom_field: str | None = None
    state_management: bool = False
    request: dict[str, Any] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)
    callback_content_type: str = "multipart/form-data"
    legs: list[Leg] = field(default_factory=list)
    callbacks: list[CallbackRecord] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: v1's Direction: outbound-api (placed by the API) or inbound (rang an ExoPhone)
    direction: str = "outbound-api"
    #: the call flow the call started in (inbound calls), and the digits it gathered
    app_id: str | None = None
    app_name: str | None = None
    digits: str | None = None
    #: an inbound call: who hung up (or why the connect ended), set by a hang-up
    hangup_cause: str | None = None
    #: an inbound call: the agent its Connect applet dials (DialWhomNumber)
    agent_number: str | None = None

    @property
    def inbound(self) -> bool:
        return self.direction == "inbound"

    def add_leg(self, role: Role, phone_number: str, at: datetime) -> Leg:
        leg = Leg(
            sid=new_sid(),
            call_sid=self.sid,
            role=role,
            phone_number=phone_number,
            created=at,
            updated=at,
            inbound=self.inbound,
        )
        self.legs.append(leg)
        return leg

    def leg(self, role: Role) -> Leg | None:
        return next((leg for leg in self.legs if leg.role == role), None)

    def find_leg(self, sid: str) -> Leg | None:
        return next((leg for leg in self.legs if leg.sid == sid), None)

    @property
    def monitor_legs(self) -> list[Leg]:
        return [leg for leg in self.legs if leg.role == "monitor"]

    @property
    def ended(self) -> bool:
        return self.phase == "ended"

    @property
    def live(self) -> bool:
        """Not over, and at least one leg is on the call (so it has active legs)."""
        return not self.ended and any(leg.active for leg in self.legs)

    def touch(self, at: datetime) -> None:
        self.updated = at

    def conversation_duration(self) -> int:
        """Seconds both parties talked: the second leg's time on call (an inbound call's
        caller is on the line from the start; its conversation is the agent's leg)."""
        second = self.leg("agent" if self.inbound else "customer")
        return 0 if second is None else second.on_call_duration()

    def parties(self) -> tuple[Leg | None, Leg | None]:
        """(the leg dialled first, the one connected second): agent then customer for a
        call the API placed, the caller then the agent for an inbound call."""
        agent, customer = self.leg("agent"), self.leg("customer")
        return (customer, agent) if self.inbound else (agent, customer)

    def duration(self) -> int:
        return whole_seconds(self.start_time, self.end_time)

    def recording_url(self, base: str) -> str | None:
        if not self.record or self.conversation_duration() == 0:
            return None
        return f"{base}/{self.account_sid}/{self.sid}.mp3"

    def leg_status(self, role: Role) -> str | None:
        leg = self.leg(role)
        return None if leg is None else leg.status


class CallStore:
    """Every call the sandbox has seen, in creation order."""

    def __init__(self) -> None:
        self._calls: dict[str, Call] = {}

    def add(self, call: Call) -> None:
        self._calls[call.sid] = call

    def get(self, sid: str) -> Call | None:
        return self._calls.get(sid)

    def __iter__(self) -> Iterator[Call]:
        return iter(list(self._calls.values()))

    def __len__(self) -> int:
        return len(self._calls)

    def agent_is_busy(self, number: str) -> bool:
        """Is this agent number on a live, state-managed call right now?"""
        if numbers.is_busy_device(number):
            return True
        return any(
            call.state_management
            and not call.ended
            and numbers.same_number(call.from_number, number)
            for call in self
        )
