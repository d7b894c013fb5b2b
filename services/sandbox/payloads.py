"""Status-callback payloads, exactly in Exotel's shapes (:mod:`services.exotel.fields`),
and their HTTP encodings."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.exotel.fields import V1, Ccm, Lwb, Passthru, Spelling, spell
from services.sandbox import clock, views
from services.sandbox.clock import v1_time
from services.sandbox.state import Call, Leg, whole_seconds

MULTIPART = "multipart/form-data"
JSON = "application/json"


def v1_payload(call: Call, event: str, recording_base: str) -> dict[str, Any]:
    """v1 callback. ``default``: the four parameters sent when no event was subscribed."""
    recording = call.recording_url(recording_base) if call.ended else None
    status = call.status if event != "answered" else "in-progress"
    if event == "default":
        return {
            V1.CALL_SID: call.sid,
            V1.STATUS: status,
            V1.RECORDING_URL: recording,
            V1.DATE_UPDATED: v1_time(call.updated or call.created),
        }
    legs = []
    for role in ("agent", "customer"):
        leg = call.leg(role)
        legs.append(
            {
                V1.ON_CALL_DURATION: leg.on_call_duration() if leg else 0,
                V1.STATUS: leg.status if leg else None,
            }
        )
    payload: dict[str, Any] = {
        V1.CALL_SID: call.sid,
        V1.EVENT_TYPE: event,
        V1.DATE_CREATED: v1_time(call.created),
        V1.DATE_UPDATED: v1_time(call.updated or call.created),
        V1.STATUS: status,
        V1.TO: call.to_number,
        V1.FROM: call.from_number,
        V1.PHONE_NUMBER_SID: call.caller_id,
        V1.START_TIME: v1_time(call.start_time or call.created),
        V1.END_TIME: v1_time(call.end_time),
        V1.DIRECTION: call.direction,
        V1.RECORDING_URL: recording,
        V1.CONVERSATION_DURATION: call.conversation_duration(),
        V1.LEGS: legs,
    }
    if event == "terminal" and call.custom_field is not None:
        payload[V1.CUSTOM_FIELD] = call.custom_field
    return payload


def v2_payload(call: Call, event: str, recording_base: str) -> dict[str, Any]:
    return {
        Ccm.EVENT_DETAILS: {Ccm.EVENT_TYPE: event},
        Ccm.CALL_DETAILS: views.v2_call(call, recording_base),
    }


def v3_payload(call: Call, event: str, recording_base: str) -> dict[str, Any]:
    return {
        Ccm.EVENT_DETAILS: {Ccm.EVENT_TYPE: event},
        Ccm.CALL_DETAILS: views.v3_call(call, recording_base),
    }


def monitor_leg_payload(call: Call, leg: Leg) -> dict[str, Any]:
    """LWB monitor-leg terminal callback (the doc's lowercase keys, string values)."""
    return {
        Lwb.LEG_SID: leg.sid,
        Lwb.CALL_SID: call.sid,
        Lwb.ACCOUNT_SID: call.account_sid,
        Lwb.DATE_CREATED: v1_time(leg.created),
        Lwb.DATE_UPDATED: v1_time(leg.updated),
        Lwb.START_TIME: v1_time(leg.created),
        Lwb.END_TIME: v1_time(leg.ended_at),
        Lwb.LEG_PHONE_NUMBER: leg.phone_number,
        Lwb.STATUS: leg.status,
        Lwb.ON_CALL_DURATION: str(leg.on_call_duration()),
        Lwb.ORIGIN: leg.origin,
        Lwb.LAST_ACTION: leg.last_action,
        Lwb.LEG_CUSTOM_FIELD: leg.custom_field,
        Lwb.EVENT_TYPE: "terminal",
    }


def passthru_payload(
    call: Call, call_type: str, *, after_connect: bool, recording_base: str
) -> dict[str, Any]:
    """A call flow's Passthru GET parameters (passthru-applet.txt), where the applet sits:
    before the Connect applet (``call-attempt``, the gathered ``digits``) or after it
    (``DialWhomNumber``, ``DialCallDuration``, ``RecordingUrl`` when it recorded)."""
    agent = call.leg("agent")
    dialled = 0 if agent is None else whole_seconds(agent.created, agent.ended_at or clock.now())
    payload: dict[str, Any] = {
        Passthru.CALL_SID: call.sid,
        Passthru.CALL_FROM: call.from_number,
        Passthru.CALL_TO: call.to_number,
        Passthru.DIRECTION: Passthru.INCOMING,
        Passthru.CREATED: v1_time(call.created),
        Passthru.DIAL_CALL_DURATION: str(dialled),
        Passthru.START_TIME: v1_time(call.start_time or call.created),
        Passthru.CURRENT_TIME: v1_time(clock.now()),
        Passthru.END_TIME: Passthru.EPOCH_END_TIME,
        Passthru.CALL_TYPE: call_type,
    }
    if call.digits:
        payload[Passthru.DIGITS] = f'"{call.digits}"'  # Exotel wraps them in quotes
    if after_connect and agent is not None:
        payload[Passthru.DIAL_WHOM_NUMBER] = agent.phone_number
        recording = call.recording_url(recording_base)
        if recording:
            payload[Passthru.RECORDING_URL] = recording
    if call.app_id:
        payload[Passthru.FLOW_ID] = call.app_id
    return payload


def respell(value: Any, spelling: Spelling | None) -> Any:
    """``value`` with every key in ``spelling`` (``None``: as its document spells it)."""
    if spelling is None:
        return value
    if isinstance(value, dict):
        return {spell(str(key), spelling): respell(item, spelling) for key, item in value.items()}
    if isinstance(value, list):
        return [respell(item, spelling) for item in value]
    return value


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Form fields for a nested value: ``Legs[0][Status]``, ``call_details[sid]``."""
    if isinstance(value, dict):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs.extend(flatten(item, f"{prefix}[{key}]" if prefix else str(key)))
        return pairs
    if isinstance(value, list):
        pairs = []
        for index, item in enumerate(value):
            pairs.extend(flatten(item, f"{prefix}[{index}]"))
        return pairs
    if value is None:
        return [(prefix, "")]
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    return [(prefix, str(value))]


def multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type (with boundary)."""
    boundary = f"----ExotelSandbox{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for name, value in fields:
        chunks.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            ).encode()
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"{MULTIPART}; boundary={boundary}"


def encode(
    payload: dict[str, Any], method: str, url: str, content_type: str
) -> tuple[str, bytes, str | None]:
    """(final URL, body, Content-Type header) for a callback request."""
    if method.upper() == "GET":
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True) + flatten(payload)
        return urlunsplit(parts._replace(query=urlencode(query))), b"", None
    if content_type.lower().startswith(JSON):
        return url, json.dumps(payload).encode(), JSON
    body, header = multipart(flatten(payload))
    return url, body, header
