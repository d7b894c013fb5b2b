"""Map ``lwb.action`` and ``leg.hangup`` onto Exotel's LWB legs API (form-encoded, v1).

The fields are the LWB document's ("create the monitor leg", "upgrade", "hang up"), named
in :class:`services.exotel.fields.Lwb`: ``action`` in lower case as in its samples, and
``TargetLegSid`` (the document's capture lost its case; this matches the Twilio-style v1
names of the rest of the form).
"""

from __future__ import annotations

from typing import Literal

from contracts.commands import LwbAction
from services.executor.mapping.callbacks import CallbackContentType
from services.exotel.fields import Lwb, indexed
from services.exotel.requests import HangupRequest, MonitorLegRequest, MonitorUpgradeRequest

#: The one status-callback event Exotel offers for monitor legs.
MONITOR_LEG_EVENTS = ("terminal",)


def monitor_leg(
    command: LwbAction,
    *,
    target_leg_sid: str,
    callback_url: str,
    callback_content_type: CallbackContentType = "multipart/form-data",
) -> MonitorLegRequest:
    """Create the supervisor's monitor leg on ``target_leg_sid`` (POST legs)."""
    form = {
        Lwb.ACTION: command.action,
        Lwb.PHONE_NUMBER: command.supervisor,
        Lwb.TARGET_LEG_SID: target_leg_sid,
        Lwb.STATUS_CALLBACK: callback_url,
        Lwb.STATUS_CALLBACK_CONTENT_TYPE: callback_content_type,
    }
    for index, event in enumerate(MONITOR_LEG_EVENTS):
        form[indexed(Lwb.STATUS_CALLBACK_EVENTS, index)] = event
    if command.custom_field is not None:
        form[Lwb.CUSTOM_FIELD] = command.custom_field
    return MonitorLegRequest(command.call_sid, form)


def monitor_upgrade(
    call_sid: str,
    monitor_leg_sid: str,
    action: Literal["whisper", "barge"],
    *,
    target_leg_sid: str | None = None,
) -> MonitorUpgradeRequest:
    """Move a monitor leg to ``action`` (PUT legs/{sid}); whisper names the leg it talks to."""
    form: dict[str, str] = {Lwb.ACTION: action}
    if target_leg_sid:
        form[Lwb.TARGET_LEG_SID] = target_leg_sid
    return MonitorUpgradeRequest(call_sid, monitor_leg_sid, form)


def hangup(call_sid: str, leg_sid: str) -> HangupRequest:
    """Hang ``leg_sid`` up (PUT legs/{sid} ``action=hangup``)."""
    return HangupRequest(call_sid, leg_sid, {Lwb.ACTION: Lwb.HANGUP})
