"""The requests with an effect, built before they reach the client.

``services/executor/mapping/`` builds them from commands (it is the only place that
writes Exotel's request fields); :class:`~services.exotel.client.ExotelClient` sends
them as given: a form for v1 and the LWB legs API (or, for an account whose
``lwb_request_encoding`` is ``json``, the LWB create and upgrade fields as a JSON body), a
JSON body for v2/v3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.exotel.accounts import LwbEncoding

__all__ = [
    "CcmCallRequest",
    "ConnectRequest",
    "HangupRequest",
    "MonitorLegRequest",
    "MonitorUpgradeRequest",
    "V1ConnectRequest",
]


@dataclass(frozen=True)
class V1ConnectRequest:
    """``POST /v1/Accounts/{sid}/Calls/connect.json`` with this form."""

    form: Mapping[str, str]
    api: Literal["v1"] = "v1"


@dataclass(frozen=True)
class CcmCallRequest:
    """``POST {ccm_base}/{api}/accounts/{sid}/calls`` with this JSON body."""

    api: Literal["v2", "v3"]
    body: Mapping[str, Any]


#: Placing a call, on whichever API the command runs.
ConnectRequest = V1ConnectRequest | CcmCallRequest


@dataclass(frozen=True)
class MonitorLegRequest:
    """``POST .../Calls/{call_sid}/legs.json``: a supervisor's listen / whisper / barge leg."""

    call_sid: str
    form: Mapping[str, str]
    #: the fields as a form, or as a JSON object (the same names and values)
    encoding: LwbEncoding = "form"


@dataclass(frozen=True)
class MonitorUpgradeRequest:
    """``PUT .../Calls/{call_sid}/legs/{leg_sid}.json``: a monitor leg's new mode."""

    call_sid: str
    leg_sid: str
    form: Mapping[str, str]
    encoding: LwbEncoding = "form"


@dataclass(frozen=True)
class HangupRequest:
    """``PUT .../Calls/{call_sid}/legs/{leg_sid}.json`` with ``action=hangup``."""

    call_sid: str
    leg_sid: str
    form: Mapping[str, str]
