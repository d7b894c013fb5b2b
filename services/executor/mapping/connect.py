"""Map a ``CallConnect`` onto the Exotel API it runs on (v1 form, v2 or v3 JSON).

Field names are Exotel's own (:mod:`services.exotel.fields`, from Exotel's v1
Calls/connect and v2/v3 CCM call documents). Options an API does not offer are refused
with the field named, rather than silently dropped: also those v1's "connect to a call
flow" does not take (recording, wait_url, playback, status_events).
"""

from __future__ import annotations

from typing import Any, ClassVar

from contracts.commands import ApiVersion, CallConnect
from contracts.results import ErrorCode
from services.executor.mapping.callbacks import CallbackContentType
from services.exotel.fields import V1, V2, V3, indexed
from services.exotel.requests import CcmCallRequest, ConnectRequest, V1ConnectRequest

JSON = "application/json"


class UnsupportedOption(ValueError):
    """The command asks for something the chosen Exotel API does not offer."""

    code: ClassVar[ErrorCode] = "invalid_command"

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


_V1_ONLY = ("call_type", "flow_url")
_V3_ONLY = ("playback", "streaming", "state_management")
#: What v1's "connect number to a call flow" does not take (v1-voice-calls.txt: From,
#: CallerId, Url, CallType, TimeLimit, TimeOut, StatusCallback, CustomField only; its
#: StatusCallback gets four parameters and "StatusCallbackEvents parameter is not
#: applicable"). ``status_events`` is refused only when the command sets it.
_NOT_FOR_FLOWS = (
    "record",
    "recording_channels",
    "recording_format",
    "wait_url",
    "start_playback_to",
    "start_playback_value",
    "status_events",
)


def _check_flow_options(command: CallConnect) -> None:
    for name in _NOT_FOR_FLOWS:
        given = name in command.model_fields_set and getattr(command, name) is not None
        if given:
            raise UnsupportedOption(
                name,
                f"'{name}' is not offered when connecting to a call flow (flow_url): Exotel's "
                "flow API takes only from, caller_id, call_type, time_limit, time_out and "
                "custom_field",
            )


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
    if command.flow_url is not None:
        _check_flow_options(command)
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
    form: dict[str, str] = {V1.FROM: command.from_, V1.CALLER_ID: command.caller_id}
    optional: dict[str, object] = {
        V1.CALL_TYPE: command.call_type,
        V1.TIME_LIMIT: command.time_limit,
        V1.TIME_OUT: command.time_out,
        V1.CUSTOM_FIELD: command.custom_field,
        V1.STATUS_CALLBACK: callback_url,
    }
    if command.to is None:
        # Connect to a call flow (the contract requires `to` or `flow_url`): Exotel sends
        # only the four basic callback parameters; the options it does not take were
        # refused above, and CustomField goes to the flow's Passthru / Greeting applets.
        form[V1.URL] = str(command.flow_url)
    else:
        form[V1.TO] = command.to
        optional |= {
            V1.WAIT_URL: command.wait_url and str(command.wait_url),
            V1.RECORD: _bool(command.record),
            V1.RECORDING_CHANNELS: command.recording_channels,
            V1.RECORDING_FORMAT: command.recording_format,
            V1.START_PLAYBACK_TO: command.start_playback_to and command.start_playback_to.title(),
            V1.START_PLAYBACK_VALUE: command.start_playback_value
            and str(command.start_playback_value),
            V1.STATUS_CALLBACK_CONTENT_TYPE: content_type,
        }
        for index, event in enumerate(command.status_events):
            form[indexed(V1.STATUS_CALLBACK_EVENTS, index)] = event
    form |= {k: str(v) for k, v in optional.items() if v is not None}
    return form


def _v2_body(command: CallConnect, callback_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        V2.FROM: {V2.USER_CONTACT_URI: command.from_},
        V2.TO: {V2.CUSTOMER_CONTACT_URI: command.to},
        V2.VIRTUAL_NUMBER: command.caller_id,
        V2.RECORDING: command.record,
        V2.RECORDING_CHANNELS: command.recording_channels,
        V2.WAIT_AUDIO_URL: command.wait_url and str(command.wait_url),
        V2.MAX_TIME_LIMIT: command.time_limit,
        V2.ATTEMPT_TIME_OUT: command.time_out,
        V2.CUSTOM_FIELD: command.custom_field,
        V2.STATUS_CALLBACK: [
            {V2.EVENT: event, V2.URL: callback_url} for event in command.status_events
        ],
    }
    return {k: v for k, v in body.items() if v is not None}


def _v3_body(command: CallConnect, callback_url: str) -> dict[str, Any]:
    from_leg: dict[str, Any] = {V3.CONTACT_URI: command.from_}
    if command.state_management is not None:
        from_leg[V3.STATE_MANAGEMENT] = command.state_management
    recording = {
        V3.RECORD: command.record,
        V3.CHANNELS: command.recording_channels,
        V3.FORMAT: command.recording_format,
    }
    playback = [p.model_dump(mode="json") for p in command.playback or ()]
    if command.start_playback_value is not None:
        playback.insert(
            0,
            {
                V3.EVENT: "start",
                V3.TO: command.start_playback_to or "callee",
                V3.VALUE: str(command.start_playback_value),
            },
        )
    callbacks = [
        {V3.EVENT: event, V3.URL: callback_url, V3.METHOD: "POST", V3.CONTENT_TYPE: JSON}
        for event in command.status_events
    ]
    body: dict[str, Any] = {
        V3.FROM: from_leg,
        V3.TO: {V3.CONTACT_URI: command.to},
        V3.VIRTUAL_NUMBER: command.caller_id,
        V3.RECORDING: {k: v for k, v in recording.items() if v is not None} or None,
        V3.WAIT_AUDIO_URL: command.wait_url and str(command.wait_url),
        V3.MAX_TIME_LIMIT: command.time_limit,
        V3.ATTEMPT_TIME_OUT: command.time_out,
        V3.CUSTOM_FIELD: command.custom_field,
        V3.STATUS_CALLBACK: callbacks,
        V3.PLAYBACK: playback or None,
        V3.STREAMING: command.streaming.model_dump(mode="json") if command.streaming else None,
    }
    return {k: v for k, v in body.items() if v is not None}


def _bool(value: bool | None) -> str | None:
    return None if value is None else str(value).lower()
