"""Status-callback payloads, exactly in Exotel's shapes, and their HTTP encodings."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.sandbox import views
from services.sandbox.clock import v1_time
from services.sandbox.state import Call, Leg

MULTIPART = "multipart/form-data"
JSON = "application/json"


def v1_payload(call: Call, event: str, recording_base: str) -> dict[str, Any]:
    """v1 callback. ``default``: the four parameters sent when no event was subscribed."""
    recording = call.recording_url(recording_base) if call.ended else None
    status = call.status if event != "answered" else "in-progress"
    if event == "default":
        return {
            "CallSid": call.sid,
            "Status": status,
            "RecordingUrl": recording,
            "DateUpdated": v1_time(call.updated or call.created),
        }
    legs = []
    for role in ("agent", "customer"):
        leg = call.leg(role)
        legs.append(
            {
                "OnCallDuration": leg.on_call_duration() if leg else 0,
                "Status": leg.status if leg else None,
            }
        )
    payload: dict[str, Any] = {
        "CallSid": call.sid,
        "EventType": event,
        "DateCreated": v1_time(call.created),
        "DateUpdated": v1_time(call.updated or call.created),
        "Status": status,
        "To": call.to_number,
        "From": call.from_number,
        "PhoneNumberSid": call.caller_id,
        "StartTime": v1_time(call.start_time or call.created),
        "EndTime": v1_time(call.end_time),
        "Direction": "outbound-api",
        "RecordingUrl": recording,
        "ConversationDuration": call.conversation_duration(),
        "Legs": legs,
    }
    if event == "terminal" and call.custom_field is not None:
        payload["CustomField"] = call.custom_field
    return payload


def v2_payload(call: Call, event: str, recording_base: str) -> dict[str, Any]:
    return {
        "event_details": {"event_type": event},
        "call_details": views.v2_call(call, recording_base),
    }


def v3_payload(call: Call, event: str, recording_base: str) -> dict[str, Any]:
    return {
        "event_details": {"event_type": event},
        "call_details": views.v3_call(call, recording_base),
    }


def monitor_leg_payload(call: Call, leg: Leg) -> dict[str, Any]:
    """LWB monitor-leg terminal callback (the doc's lowercase keys, string values)."""
    return {
        "legsid": leg.sid,
        "callsid": call.sid,
        "accountsid": call.account_sid,
        "datecreated": v1_time(leg.created),
        "dateupdated": v1_time(leg.updated),
        "starttime": v1_time(leg.created),
        "endtime": v1_time(leg.ended_at),
        "phonenumber": leg.phone_number,
        "status": leg.status,
        "oncallduration": str(leg.on_call_duration()),
        "origin": leg.origin,
        "lastaction": leg.last_action,
        "customfield": leg.custom_field,
        "eventtype": "terminal",
    }


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
