"""Map ``lwb.action`` and ``leg.hangup`` onto Exotel's LWB legs API (v1).

The fields are the LWB document's ("create the monitor leg", "upgrade", "hang up"), named
in :class:`services.exotel.fields.Lwb`: ``action`` in lower case as in its samples, and
``TargetLegSid`` (the document's capture lost its case; this matches the Twilio-style v1
names of the rest of the form).

* The supervisor's number in the document's format (:func:`lwb_phone_number`): "if mobile
  number, prefix the 10 digits with a 0 (09052161119); if landline number, prefix it with
  std code (08030752400)".
* Create and upgrade go as a form or, for an account whose ``lwb_request_encoding`` is
  ``json``, as a JSON object of the same fields (the document's samples are JSON, with
  ``statuscallbackevents[0]`` as a key); the hang-up is a form, as its sample.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from contracts.commands import LwbAction
from services.executor.mapping.callbacks import CallbackContentType
from services.exotel.accounts import LwbEncoding
from services.exotel.fields import Lwb, indexed
from services.exotel.requests import HangupRequest, MonitorLegRequest, MonitorUpgradeRequest

#: The one status-callback event Exotel offers for monitor legs.
MONITOR_LEG_EVENTS = ("terminal",)

_INDIAN_MOBILE: Final = re.compile(r"[6-9][0-9]{9}")
_INDIA_E164: Final = re.compile(r"\+91([0-9]{10})")


def lwb_phone_number(number: str) -> str:
    """The supervisor's number as the LWB document asks for it.

    A 10-digit Indian mobile number (``9052161119``) gets the leading 0
    (``09052161119``); an Indian number in E.164 (``+919052161119``, or a landline with its
    STD code, ``+918030752400``) becomes ``0`` + its 10 digits (``08030752400``). Anything
    else (already ``0``-prefixed, another country, a SIP URI) is passed as given.
    """
    text = number.strip()
    if _INDIAN_MOBILE.fullmatch(text):
        return f"0{text}"
    e164 = _INDIA_E164.fullmatch(text)
    return f"0{e164.group(1)}" if e164 else text


def monitor_leg(
    command: LwbAction,
    *,
    target_leg_sid: str,
    callback_url: str,
    callback_content_type: CallbackContentType = "multipart/form-data",
    encoding: LwbEncoding = "form",
) -> MonitorLegRequest:
    """Create the supervisor's monitor leg on ``target_leg_sid`` (POST legs)."""
    form = {
        Lwb.ACTION: command.action,
        Lwb.PHONE_NUMBER: lwb_phone_number(command.supervisor),
        Lwb.TARGET_LEG_SID: target_leg_sid,
        Lwb.STATUS_CALLBACK: callback_url,
        Lwb.STATUS_CALLBACK_CONTENT_TYPE: callback_content_type,
    }
    for index, event in enumerate(MONITOR_LEG_EVENTS):
        form[indexed(Lwb.STATUS_CALLBACK_EVENTS, index)] = event
    if command.custom_field is not None:
        form[Lwb.CUSTOM_FIELD] = command.custom_field
    return MonitorLegRequest(command.call_sid, form, encoding)


def monitor_upgrade(
    call_sid: str,
    monitor_leg_sid: str,
    action: Literal["whisper", "barge"],
    *,
    target_leg_sid: str | None = None,
    encoding: LwbEncoding = "form",
) -> MonitorUpgradeRequest:
    """Move a monitor leg to ``action`` (PUT legs/{sid}); whisper names the leg it talks to."""
    form: dict[str, str] = {Lwb.ACTION: action}
    if target_leg_sid:
        form[Lwb.TARGET_LEG_SID] = target_leg_sid
    return MonitorUpgradeRequest(call_sid, monitor_leg_sid, form, encoding)


def hangup(call_sid: str, leg_sid: str) -> HangupRequest:
    """Hang ``leg_sid`` up (PUT legs/{sid} ``action=hangup``)."""
    return HangupRequest(call_sid, leg_sid, {Lwb.ACTION: Lwb.HANGUP})
