"""Pure decisions behind ``lwb.action`` and ``leg.hangup``: which leg, which transition.

No I/O here: the service layer reads the active legs from Exotel
(``GET /v1/Accounts/{sid}/Calls/{call_sid}/activelegs``) and asks this module what to do.

Origins (Exotel's Legs API documentation, v1-call-legs.txt)
    ``inbound``        the customer who dialled the ExoPhone;
    ``outbound``       the first leg of the connect API (its ``From``);
    ``outbound-dial``  every later dial-out from Exotel once the first leg is up (the
                       connect API's ``To``, or the agent an inbound flow dialled);
    ``monitor``        a supervisor's listen / whisper / barge leg.
Origins are compared case-insensitively with spaces and underscores read as ``-`` (the
captured LWB document writes ``outbound dial``).

The agent leg (what ``lwb.action`` monitors when it has no ``target_leg_sid``, and what
``leg.hangup`` calls ``agent``):
    * monitor legs are never candidates, nor are legs whose status is already terminal;
    * inbound call (a leg of origin ``inbound`` is present): the agent is the leg Exotel
      dialled out to, origin ``outbound-dial``; the customer is the ``inbound`` leg;
    * outbound connect call (a leg of origin ``outbound`` is present, none ``inbound``):
      the agent is the ``from`` leg, origin ``outbound`` (the first leg Exotel dials); the
      customer is the ``outbound-dial`` leg;
    * anything else (only ``outbound-dial`` legs, no legs at all): the call's direction
      cannot be told, so there is no agent;
    * exactly one candidate must remain: zero is ``none``, several (a transfer, a dialer
      or a conference) is ``ambiguous``; both are rejected with ``no_target_leg`` and the
      reason, never guessed.
The customer (``leg.hangup`` ``customer``) is the other non-monitor side by the same
rule, and must be unique too. ``monitor`` selects every monitor leg (all are hung up);
``all`` selects every active leg, monitor legs first.

Monitor-leg upgrades (PUT): only ``listen -> whisper``, ``whisper -> barge`` and
``listen -> barge``. The current mode is the monitor leg's ``lastaction`` in the active
legs; an upgrade that is not in this table (``barge -> whisper``, ``whisper -> whisper``,
...) is refused before any upgrade request is sent. When the monitor leg is not among the
active legs (still ringing, or just gone) its mode is unknown and Exotel decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

from contracts.results import ErrorCode

MonitorMode = Literal["listen", "whisper", "barge"]
Selector = Literal["agent", "customer", "monitor", "all"]
NoTargetReason = Literal["none", "ambiguous"]

MONITOR_MODES: tuple[MonitorMode, ...] = ("listen", "whisper", "barge")
ALLOWED_UPGRADES: frozenset[tuple[str, str]] = frozenset(
    {("listen", "whisper"), ("whisper", "barge"), ("listen", "barge")}
)
TERMINAL_LEG_STATUSES = frozenset({"completed", "failed", "busy", "no-answer", "canceled"})

INBOUND = "inbound"
OUTBOUND = "outbound"
OUTBOUND_DIAL = "outbound-dial"
MONITOR = "monitor"


class LegLike(Protocol):
    """What a leg from ``activelegs`` must offer (``services.exotel.ActiveLeg`` does)."""

    @property
    def sid(self) -> str: ...

    @property
    def origin(self) -> str | None: ...

    @property
    def status(self) -> str | None: ...

    @property
    def last_action(self) -> str | None: ...

    @property
    def phone_number(self) -> str | None: ...


class NoTargetLeg(Exception):
    """No single leg matches: ``reason`` is ``none`` or ``ambiguous``."""

    code: ClassVar[ErrorCode] = "no_target_leg"

    def __init__(self, reason: NoTargetReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class IllegalTransition(Exception):
    """The monitor leg cannot go from its current mode to the one asked for."""

    code: ClassVar[ErrorCode] = "illegal_transition"

    def __init__(self, current: str, wanted: str) -> None:
        allowed = ", ".join(f"{a} -> {b}" for a, b in sorted(ALLOWED_UPGRADES))
        super().__init__(
            f"monitor leg is in {current!r} mode; {current} -> {wanted} is not allowed "
            f"(allowed upgrades: {allowed})"
        )
        self.current = current
        self.wanted = wanted


def origin_of(leg: LegLike) -> str:
    """The leg's origin, normalised: lower case, ``outbound dial`` -> ``outbound-dial``."""
    origin = (leg.origin or "").strip().lower()
    return "-".join(origin.replace("_", " ").split())


def is_monitor(leg: LegLike) -> bool:
    return origin_of(leg) == MONITOR


def is_active(leg: LegLike) -> bool:
    """Not known to have ended (``activelegs`` should only list live legs anyway)."""
    return (leg.status or "").strip().lower() not in TERMINAL_LEG_STATUSES


def _describe(legs: Sequence[LegLike]) -> str:
    return ", ".join(f"{leg.sid} ({origin_of(leg) or 'no origin'})" for leg in legs) or "none"


def _parties(legs: Sequence[LegLike]) -> list[LegLike]:
    return [leg for leg in legs if is_active(leg) and not is_monitor(leg)]


def _direction(parties: Sequence[LegLike]) -> Literal["inbound", "outbound"] | None:
    origins = {origin_of(leg) for leg in parties}
    if INBOUND in origins:
        return "inbound"
    if OUTBOUND in origins:
        return "outbound"
    return None


def _single(candidates: Sequence[LegLike], what: str, parties: Sequence[LegLike]) -> LegLike:
    if not candidates:
        raise NoTargetLeg("none", f"no {what} leg among the active legs: {_describe(parties)}")
    if len(candidates) > 1:
        raise NoTargetLeg(
            "ambiguous",
            f"{len(candidates)} legs could be the {what}: {_describe(candidates)}; "
            "give the leg sid explicitly",
        )
    return candidates[0]


def _side(legs: Sequence[LegLike], side: Literal["agent", "customer"]) -> LegLike:
    parties = _parties(legs)
    direction = _direction(parties)
    if direction is None:
        raise NoTargetLeg(
            "none",
            f"cannot tell the {side} leg: no leg of origin 'outbound' or 'inbound' is on the "
            f"call (active legs: {_describe(parties)})",
        )
    wanted = {
        ("outbound", "agent"): OUTBOUND,
        ("outbound", "customer"): OUTBOUND_DIAL,
        ("inbound", "agent"): OUTBOUND_DIAL,
        ("inbound", "customer"): INBOUND,
    }[(direction, side)]
    candidates = [leg for leg in parties if origin_of(leg) == wanted]
    return _single(candidates, f"{side} ({direction} call, origin {wanted!r})", parties)


def pick_agent_leg(legs: Sequence[LegLike]) -> LegLike:
    """The agent leg of a call from its active legs; raises :class:`NoTargetLeg`."""
    return _side(legs, "agent")


def pick_customer_leg(legs: Sequence[LegLike]) -> LegLike:
    """The customer leg of a call from its active legs; raises :class:`NoTargetLeg`."""
    return _side(legs, "customer")


def resolve_selector(legs: Sequence[LegLike], selector: Selector) -> list[LegLike]:
    """The legs ``leg.hangup``'s ``leg`` selector names, in the order to hang them up."""
    if selector == "agent":
        return [pick_agent_leg(legs)]
    if selector == "customer":
        return [pick_customer_leg(legs)]
    live = [leg for leg in legs if is_active(leg)]
    monitors = [leg for leg in live if is_monitor(leg)]
    if selector == "monitor":
        if not monitors:
            raise NoTargetLeg("none", f"no monitor leg among the active legs: {_describe(live)}")
        return monitors
    if not live:
        raise NoTargetLeg("none", "the call has no active legs")
    return [*monitors, *(leg for leg in live if not is_monitor(leg))]


def find_leg(legs: Sequence[LegLike], sid: str) -> LegLike | None:
    return next((leg for leg in legs if leg.sid == sid), None)


@dataclass(frozen=True)
class UpgradeCheck:
    """What is known about a monitor-leg upgrade before asking Exotel."""

    current: MonitorMode | None  # None: the mode is unknown, Exotel will decide

    @property
    def known(self) -> bool:
        return self.current is not None


def current_mode(leg: LegLike | None) -> MonitorMode | None:
    """A monitor leg's mode from its ``lastaction`` (None when unknown)."""
    if leg is None:
        return None
    action = (leg.last_action or "").strip().lower()
    for mode in MONITOR_MODES:
        if action == mode:
            return mode
    return None


def check_upgrade(leg: LegLike | None, wanted: str) -> UpgradeCheck:
    """Whether ``leg`` (a monitor leg from the active legs, or None when it is not listed)
    may be upgraded to ``wanted``; raises :class:`IllegalTransition` when it may not."""
    mode = current_mode(leg)
    if mode is not None and (mode, wanted) not in ALLOWED_UPGRADES:
        raise IllegalTransition(mode, wanted)
    return UpgradeCheck(current=mode)
