"""Exotel call statuses (any API) -> the contract's ``NormalisedStatus``.

Shared by the ingress (status callbacks) and the executor's call watch (call details
polled when a terminal callback is missing), so both kinds of ``call.status`` fact use
one vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast

from contracts.status import NormalisedStatus

__all__ = ["flow_status", "normalise_status"]

_V1_STATUSES: Final[frozenset[str]] = frozenset(
    {"queued", "ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"}
)
# v2/v3 CCM terminal statuses (v3-ccm-calls.txt, "status") and common spelling variants.
_CCM_STATUSES: Final[Mapping[str, NormalisedStatus]] = {
    "from_leg_unanswered": "no-answer",
    "to_leg_unanswered": "no-answer",
    "from_leg_cancelled": "canceled",
    "to_leg_cancelled": "canceled",
    "from_leg_no_dial": "failed",
    "to_leg_no_dial": "failed",
    "cancelled": "canceled",
    "answered": "in-progress",
}


def normalise_status(raw: str | None) -> NormalisedStatus | None:
    """Exotel's status value (any API) -> the contract's status; ``None`` when empty.

    Unknown values become ``"unknown"`` (the raw value travels as ``exotel_status``).
    """
    if raw is None:
        return None
    value = raw.strip().lower()
    if not value:
        return None
    if value in _CCM_STATUSES:
        return _CCM_STATUSES[value]
    dashed = value.replace(" ", "-").replace("_", "-")
    if dashed in _V1_STATUSES:
        return cast("NormalisedStatus", dashed)
    return _CCM_STATUSES.get(dashed.replace("-", "_"), "unknown")


# A Passthru's CallType (passthru-applet.txt) says where the call is in its flow; three
# of its values mean a status, the other two (call-attempt: IVR only; voicemail) do not.
_CALL_TYPE_STATUSES: Final[Mapping[str, NormalisedStatus]] = {
    "completed": "completed",  # a conversation happened
    "incomplete": "no-answer",  # Connect applet, no agent picked up
    "client-hangup": "canceled",  # the caller hung up during the Connect applet
}


def flow_status(call_status: str | None, call_type: str | None) -> NormalisedStatus:
    """A flow notification's status: the Connect applet's ``CallStatus`` when sent, else
    the ``CallType`` where it means one, else ``"unknown"``."""
    status = normalise_status(call_status)
    if status is not None:
        return status
    value = (call_type or "").strip().lower().replace("_", "-").replace(" ", "-")
    return _CALL_TYPE_STATUSES.get(value, "unknown")
