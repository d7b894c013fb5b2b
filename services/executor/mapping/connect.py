"""Map a ``CallConnect`` onto the Exotel API it runs on (v1 form, v2 or v3 JSON).

Field names on the right are Exotel's own (Exotel's v1 Calls/connect and v2/v3 CCM call
documents). Options an API does not offer are refused with the field named, rather than
silently dropped.
"""

from __future__ import annotations

from typing import Any, ClassVar

from contracts.commands import ApiVersion, CallConnect
from contracts.results import ErrorCode
from services.executor.mapping.callbacks import CallbackContentType
from services.exotel.requests import CcmCallRequest, ConnectRequest, V1ConnectRequest


class UnsupportedOption(ValueError):
    """The command asks for something the chosen Exotel API does not offer."""

    code: ClassVar[ErrorCode] = "invalid_command"

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


_V1_ONLY = ("call_type", "flow_url")
_V3_ONLY = ("playback", "streaming", "state_management")


def build_connect_request(
    command: CallConnect,
    *,
    api: ApiVersion,
    callback_url: str,
    callback_content_type: CallbackContentType = "multipart/form-data",
) -> ConnectRequest:
    """The Exotel request for ``command`` on ``api``; raises UnsupportedOption."""
    for name in (*_V1_ONLY, *_V3_ONLY):
        offered_by = "v1" if name in _V1_ONLY else "v3"
        if getattr(command, name) is not None and api != offered_by:
            raise UnsupportedOption(name, f"'{name}' is only offered by api {offered_by}")
    if api == "v1":
        return V1ConnectRequest(_v1_form(command, callback_url, callback_content_type))
    if api == "v2":
        for name in ("recording_format", "start_playback_to", "start_playback_value"):
            if getattr(command, name) is not None:
                raise UnsupportedOption(name, f"'{name}' is not offered by api v2")
        return CcmCallRequest("v2", _v2_body(command, callback_url))
    return CcmCallRequest("v3", _v3_body(command, callback_url))


def _v1_form(
    command: CallConnect, callback_url: str, content_type: CallbackContentType
) -> dict[str, str]:
    form: dict[str, str] = {"From": command.from_, "CallerId": command.caller_id}
    optional: dict[str, object] = {
        "CallType": command.call_type,
        "TimeLimit": command.time_limit,
        "TimeOut": command.time_out,
        "CustomField": command.custom_field,
        "StatusCallback": callback_url,
    }
    if command.to is None:
        # Connect to a call flow (the contract requires `to` or `flow_url`): Exotel sends
        # only the four basic callback parameters.
        form["Url"] = str(command.flow_url)
    else:
        form["To"] = command.to
        optional |= {
            "WaitUrl": command.wait_url and str(command.wait_url),
            "Record": _bool(command.record),
            "RecordingChannels": command.recording_channels,
            "RecordingFormat": command.recording_format,
            "StartPlaybackTo": command.start_playback_to and command.start_playback_to.title(),
            "StartPlaybackValue": command.start_playback_value
            and str(command.start_playback_value),
            "StatusCallbackContentType": content_type,
        }
        for index, event in enumerate(command.status_events):
            form[f"StatusCallbackEvents[{index}]"] = event
    form |= {k: str(v) for k, v in optional.items() if v is not None}
    return form


def _v2_body(command: CallConnect, callback_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": {"user_contact_uri": command.from_},
        "to": {"customer_contact_uri": command.to},
        "virtual_number": command.caller_id,
        "recording": command.record,
        "recording_channels": command.recording_channels,
        "wait_audio_url": command.wait_url and str(command.wait_url),
        "max_time_limit": command.time_limit,
        "attempt_time_out": command.time_out,
        "custom_field": command.custom_field,
        "status_callback": [{"event": e, "url": callback_url} for e in command.status_events],
    }
    return {k: v for k, v in body.items() if v is not None}


def _v3_body(command: CallConnect, callback_url: str) -> dict[str, Any]:
    from_leg: dict[str, Any] = {"contact_uri": command.from_}
    if command.state_management is not None:
        from_leg["state_management"] = command.state_management
    recording = {
        "record": command.record,
        "channels": command.recording_channels,
        "format": command.recording_format,
    }
    playback = [p.model_dump(mode="json") for p in command.playback or ()]
    if command.start_playback_value is not None:
        playback.insert(
            0,
            {
                "event": "start",
                "to": command.start_playback_to or "callee",
                "value": str(command.start_playback_value),
            },
        )
    body: dict[str, Any] = {
        "from": from_leg,
        "to": {"contact_uri": command.to},
        "virtual_number": command.caller_id,
        "recording": {k: v for k, v in recording.items() if v is not None} or None,
        "wait_audio_url": command.wait_url and str(command.wait_url),
        "max_time_limit": command.time_limit,
        "attempt_time_out": command.time_out,
        "custom_field": command.custom_field,
        "status_callback": [
            {"event": e, "url": callback_url, "method": "POST", "content_type": "application/json"}
            for e in command.status_events
        ],
        "playback": playback or None,
        "streaming": command.streaming.model_dump(mode="json") if command.streaming else None,
    }
    return {k: v for k, v in body.items() if v is not None}


def _bool(value: bool | None) -> str | None:
    return None if value is None else str(value).lower()
