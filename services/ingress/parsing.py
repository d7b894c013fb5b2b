"""Exotel status callbacks and flow notifications -> ``CallStatusEvent``: pure functions,
no HTTP, no Kafka.

Recognised shapes (Exotel's v1, v2/v3 CCM, LWB and Passthru documents; field names from
:mod:`services.exotel.fields`), told apart by their content:

* **v1** (``Calls/connect``): ``CallSid``, ``EventType``, ``Status``, naive
  ``YYYY-MM-DD HH:mm:ss`` times, ``Legs`` as a JSON list or as ``Legs[0][Status]`` form
  keys. The basic callback sent when no event was subscribed has no ``EventType``: it is
  sent once the call completes, so it is a terminal event.
* **v2** (CCM): ``event_details`` + ``call_details`` with ``call_sid``, ``call_state``,
  ``call_status``, ``assigned_agent_details``, ``customer_details`` and ISO 8601 times.
* **v3** (CCM): ``event_details`` + ``call_details`` with ``sid``, ``state``, ``status``,
  times like ``2022-11-03 00:18:32+05:30`` and ``recordings[].url``.
* **lwb**: a monitor leg's terminal callback of the LWB (legs) API (``legsid``,
  ``callsid``, ``status``, ``oncallduration``, ``origin``, ``lastaction``...). A payload is
  a leg event when it has a key only leg events have at the top (a leg sid, ``origin``,
  ``lastaction``, ``oncallduration``: :data:`Lwb.ONLY_IN_LEG_EVENTS`) or when its URL's
  signed correlation says ``api=lwb``: **a monitor-leg event is never a call terminal**.
* **passthru**: a call flow's Passthru applet (``CallSid``, ``CallFrom``, ``CallTo``,
  ``CallType``, ``digits``, ``DialWhomNumber``...): a ``flow`` event, never a terminal.
  Recognised by the parameters only flows send (:data:`Passthru.ONLY_IN_FLOWS`), and always
  on the ingress's Passthru endpoint (:func:`parse_passthru`).

Keys are matched whatever their spelling (:func:`services.exotel.fields.fold`: ``CallSid``,
``callsid``, ``call_sid`` and ``Call_Sid`` are one key; two keys of one payload that differ
only in spelling and value are unreadable) and whatever the encoding (JSON, multipart,
form, a GET query: the form decoder nests ``Legs[0][Status]`` keys first).

Anything else raises :class:`UnreadableCallback` with a reason; the caller dead-letters
the raw bytes. Nothing in here raises any other exception for any input.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Literal, cast
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from contracts.status import (
    AssignedAgent,
    CallStatusEvent,
    LegStatus,
    NormalisedStatus,
    StatusApi,
)
from services.common.call_status import flow_status
from services.common.call_status import normalise_status as normalise_status  # noqa: PLC0414 - re-export
from services.exotel.fields import V1, V2, V3, Ccm, Lwb, Passthru, fold

# --------------------------------------------------------------------------- exceptions


class CallbackError(Exception):
    """Base of the ingress's parsing errors."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnreadableCallback(CallbackError):
    """The body is not a recognisable Exotel status callback (dead-lettered, HTTP 400)."""


# --------------------------------------------------------------------------- limits

MAX_VALUE_CHARS: Final = 4096
MAX_KEY_CHARS: Final = 256
MAX_DEPTH: Final = 8
MAX_NODES: Final = 2_000
MAX_FORM_FIELDS: Final = 1_000
MAX_LEGS: Final = 64
MAX_SID_CHARS: Final = 128
MAX_CORRELATION_CHARS: Final = 128
_MAX_INT: Final = 2**63 - 1

# Query parameters the executor appends to the callback URL (never part of the payload).
CORRELATION_PARAMS: Final = ("command_id", "account", "api")

ApiName = StatusApi
#: the events a status callback reports (a flow notification is always ``flow``)
CallbackEvent = Literal["answered", "terminal"]
_EVENT_TYPES: Final[frozenset[str]] = frozenset({"answered", "terminal"})
#: what the signed correlation parameter ``api`` may say (the executor's callback URLs)
_APIS: Final[frozenset[str]] = frozenset({"v1", "v2", "v3", "lwb"})

# Sids become Kafka keys and CloudEvents subjects: printable ASCII, no blanks.
_SID = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_SID_CHARS)  # noqa: UP031 - a regex, not a message

# --------------------------------------------------------------------------- status

# normalise_status lives in services.common.call_status (shared with the executor's call
# watch); it is re-exported here for the ingress's callers.


def _call_status(raw: str | None, event_type: CallbackEvent) -> NormalisedStatus:
    # An answered callback means a leg picked up: the call is in progress, whatever the
    # payload's status says (v2 sends null, v1 "in-progress").
    if event_type == "answered":
        return "in-progress"
    return normalise_status(raw) or "unknown"


# --------------------------------------------------------------------------- decoding


def _reject_constant(name: str) -> Any:
    raise UnreadableCallback(f"JSON body contains {name}, which is not JSON")


def decode_json(body: bytes) -> dict[str, Any]:
    """A JSON object body -> dict (NaN/Infinity, non-objects and bad UTF-8 are unreadable)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableCallback("JSON body is not valid UTF-8") from exc
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except UnreadableCallback:
        raise
    except (ValueError, RecursionError) as exc:
        raise UnreadableCallback(f"body is not valid JSON: {_short(str(exc))}") from exc
    if not isinstance(value, dict):
        raise UnreadableCallback(f"JSON body is a {type(value).__name__}, not an object")
    return value


_FORM_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def _form_path(key: str) -> list[str]:
    match = _FORM_KEY.fullmatch(key)
    if match is None:
        return [key]
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def form_to_payload(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form fields -> nested payload: ``Legs[0][Status]=x`` -> ``{"Legs": [{"Status": "x"}]}``.

    Bracketed numeric segments make lists (in index order), other segments dicts, ``[]``
    appends. A repeated key keeps its last value. A key used both as a value and as a
    container, or an index beyond the limits, is unreadable.
    """
    root: dict[Any, Any] = {}
    nested: set[str] = set()  # the names that have [segments]: containers, maybe lists
    for count, (key, value) in enumerate(pairs, start=1):
        if count > MAX_FORM_FIELDS:
            raise UnreadableCallback(f"more than {MAX_FORM_FIELDS} form fields")
        if not isinstance(key, str) or not isinstance(value, str):
            raise UnreadableCallback("form field names and values must be text")
        if len(key) > MAX_KEY_CHARS:
            raise UnreadableCallback(f"a form field name is longer than {MAX_KEY_CHARS} chars")
        if "[" not in key and "]" not in key:  # a plain name (most of them): one level, as _put
            if isinstance(root.get(key), dict):
                raise UnreadableCallback(f"form field {_short(key)!r} conflicts with another")
            root[key] = value
            continue
        path = _form_path(key)
        if len(path) > MAX_DEPTH:
            raise UnreadableCallback(f"form field {_short(key)!r} is nested too deeply")
        _put(root, key, path, value)
        nested.add(path[0])
    # Only nested fields made containers; the top level's names are text (never indices)
    for name in nested:
        root[name] = _listify(root[name])
    return root


def _put(root: dict[Any, Any], key: str, path: list[str], value: str) -> None:
    """Set ``value`` at ``path`` (the segments of form field ``key``) inside ``root``."""
    node = root
    for depth, segment in enumerate(path):
        slot = _slot(node, key, depth, segment)
        if depth == len(path) - 1:
            if isinstance(node.get(slot), dict):
                raise UnreadableCallback(f"form field {_short(key)!r} conflicts with another")
            node[slot] = value
            return
        child = node.setdefault(slot, {})
        if not isinstance(child, dict):
            raise UnreadableCallback(f"form field {_short(key)!r} conflicts with another")
        node = child


def _slot(node: dict[Any, Any], key: str, depth: int, segment: str) -> Any:
    """A segment's key in its container: ``[]`` appends, ``[3]`` is list index 3."""
    if depth > 0 and segment == "":
        return len(node)
    if depth > 0 and segment.isdigit() and segment.isascii():
        index = int(segment)
        if index >= MAX_LEGS * 4:
            raise UnreadableCallback(f"form field {_short(key)!r} has an absurd index")
        return index
    return segment


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(isinstance(k, int) for k in converted):
        return [converted[k] for k in sorted(converted)]
    return {str(k): v for k, v in converted.items()}


# --------------------------------------------------------------------------- limits check


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_limits(payload: Mapping[Any, Any]) -> None:
    """Types JSON can carry, bounded sizes: otherwise the payload is unreadable."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(payload, 0)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise UnreadableCallback(f"payload has more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise UnreadableCallback(f"payload is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict) or (depth == 0 and isinstance(value, Mapping)):
            for key, item in value.items():
                if type(key) is not str or len(key) > MAX_KEY_CHARS or not key.isascii():
                    _check_key(key)  # else it passes: short ASCII text
                if type(item) is str and depth < MAX_DEPTH:  # a text value: checked here
                    nodes += 1
                    if nodes > MAX_NODES:
                        raise UnreadableCallback(f"payload has more than {MAX_NODES} values")
                    _check_scalar(item)
                else:
                    stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        else:
            _check_scalar(value)


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        raise UnreadableCallback("payload keys must be strings")
    if len(key) > MAX_KEY_CHARS:
        raise UnreadableCallback(f"a key is longer than {MAX_KEY_CHARS} characters")
    _check_text(key)


def _check_scalar(value: Any) -> None:
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise UnreadableCallback(f"a value is longer than {MAX_VALUE_CHARS} characters")
        _check_text(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > _MAX_INT:
            raise UnreadableCallback("a number is out of range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UnreadableCallback("a number is not finite")
    else:
        raise UnreadableCallback(f"a value of type {type(value).__name__} is not JSON")


def _check_text(text: str) -> None:
    if text.isascii():  # what Exotel sends; only non-ASCII text can hold a lone surrogate
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnreadableCallback("text is not valid Unicode (lone surrogate)") from exc


# --------------------------------------------------------------------------- spelling


def fold_keys(value: Any) -> Any:
    """``value`` with every object key in its spelling-insensitive form (:func:`fold`).

    Two keys of one object that fold alike must carry the same value (``CallSid`` and
    ``callsid`` both present and different: which one is the call?): unreadable.
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for key, item in value.items():
            name = fold(str(key))
            folded = fold_keys(item) if isinstance(item, Mapping | list) else item
            if name in out and out[name] != folded:
                raise UnreadableCallback(
                    f"keys {_short(spelled[name])!r} and {_short(str(key))!r} differ only in "
                    "spelling but not in value"
                )
            out[name], spelled[name] = folded, str(key)
        return out
    if isinstance(value, list):
        return [fold_keys(item) for item in value]
    return value


def _has(payload: Mapping[str, Any], key: str) -> bool:
    return fold(key) in payload


# --------------------------------------------------------------------------- field readers
# Every reader takes a payload whose keys were folded (fold_keys) and a field name as
# Exotel spells it (the name errors show).


def _text(payload: Mapping[str, Any], key: str, *, where: str = "") -> str | None:
    """A string field; empty -> None; numbers are accepted as their text."""
    value = payload.get(fold(key))
    if value is None:
        return None
    if isinstance(value, bool | dict | list):
        raise UnreadableCallback(f"{where}{key} must be text, not {type(value).__name__}")
    if isinstance(value, int | float):
        value = str(value)
    text = cast("str", value).strip()
    return text or None


def _count(payload: Mapping[str, Any], key: str, *, where: str = "") -> int | None:
    """A whole, non-negative number of seconds; empty -> None."""
    value = payload.get(fold(key))
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UnreadableCallback(f"{where}{key} must be a whole number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and text.isascii() and len(text) <= 18:
            value = int(text)
    if not isinstance(value, int) or value < 0:
        raise UnreadableCallback(f"{where}{key} must be a whole number of seconds")
    return value


def _time(
    payload: Mapping[str, Any], key: str, tz: ZoneInfo, *, where: str = ""
) -> datetime | None:
    """``YYYY-MM-DD HH:mm:ss`` (naive: in Exotel's zone) or ISO 8601 with offset."""
    text = _text(payload, key, where=where)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UnreadableCallback(f"{where}{key} is not a date-time: {_short(text)!r}") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _sid(payload: Mapping[str, Any], key: str, *, where: str = "", required: bool) -> str | None:
    value = payload.get(fold(key))
    if value is None or value == "":
        if required:
            raise UnreadableCallback(f"{where}{key} (the call sid) is missing")
        return None
    if not isinstance(value, str) or not _SID.fullmatch(value):
        raise UnreadableCallback(
            f"{where}{key} must be 1-{MAX_SID_CHARS} printable characters without blanks"
        )
    return value


def _mapping(payload: Mapping[str, Any], key: str, *, where: str = "") -> Mapping[str, Any]:
    value = payload.get(fold(key))
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise UnreadableCallback(f"{where}{key} must be an object")
    return value


def _event_type(raw: str | None, *, where: str) -> CallbackEvent:
    if raw is None:
        return "terminal"
    value = raw.lower()
    if value not in _EVENT_TYPES:
        raise UnreadableCallback(f"{where} {_short(raw)!r} is not a known event type")
    return cast("CallbackEvent", value)


def _recordings(details: Mapping[str, Any]) -> list[str]:
    """Every ``recordings[].url`` of a CCM call, in order."""
    recordings = details.get(fold(Ccm.RECORDINGS))
    if recordings is None or recordings == "":
        return []
    if not isinstance(recordings, list):
        raise UnreadableCallback("call_details.recordings must be a list")
    urls = []
    for item in recordings:
        if not isinstance(item, Mapping):
            raise UnreadableCallback("call_details.recordings[] must be objects")
        url = _text(item, Ccm.URL, where="call_details.recordings[].")
        if url:
            urls.append(url)
    return urls


def _one(url: str | None) -> list[str]:
    return [url] if url else []


# --------------------------------------------------------------------------- shapes


def _v1_legs(payload: Mapping[str, Any]) -> list[LegStatus]:
    legs = payload.get(fold(V1.LEGS))
    if legs is None or legs == "":
        return []
    if isinstance(legs, str):  # a JSON list flattened into one form field
        try:
            legs = fold_keys(json.loads(legs))
        except (ValueError, RecursionError) as exc:
            raise UnreadableCallback("Legs is neither a list nor JSON") from exc
    if isinstance(legs, Mapping):  # Legs[a][Status] with non-numeric indices
        raise UnreadableCallback("Legs must be indexed by numbers")
    if not isinstance(legs, list):
        raise UnreadableCallback("Legs must be a list")
    if len(legs) > MAX_LEGS:
        raise UnreadableCallback(f"more than {MAX_LEGS} legs")
    out = []
    for index, leg in enumerate(legs):
        if not isinstance(leg, Mapping):
            raise UnreadableCallback(f"Legs[{index}] must be an object")
        where = f"Legs[{index}]."
        raw_status = _text(leg, V1.STATUS, where=where)
        out.append(
            LegStatus(
                index=index,
                status=normalise_status(raw_status),
                exotel_status=raw_status,
                on_call_duration=_count(leg, V1.ON_CALL_DURATION, where=where),
            )
        )
    return out


def _parse_v1(payload: Mapping[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    event_type = _event_type(_text(payload, V1.EVENT_TYPE), where=V1.EVENT_TYPE)
    raw_status = _text(payload, V1.STATUS)
    recording = _text(payload, V1.RECORDING_URL)
    return {
        "api": "v1",
        "call_sid": _sid(payload, V1.CALL_SID, required=True),
        "event_type": event_type,
        "status": _call_status(raw_status, event_type),
        "exotel_status": raw_status,
        "direction": _text(payload, V1.DIRECTION),
        "from_": _text(payload, V1.FROM),
        "to": _text(payload, V1.TO),
        "caller_id": _text(payload, V1.PHONE_NUMBER_SID),
        "started_at": _time(payload, V1.START_TIME, tz),
        "ended_at": _time(payload, V1.END_TIME, tz),
        "conversation_duration": _count(payload, V1.CONVERSATION_DURATION),
        "recording_url": recording,
        "recording_urls": _one(recording),
        "legs": _v1_legs(payload),
        "custom_field": _text(payload, V1.CUSTOM_FIELD),
    }


def _ccm_leg(index: int, details: Mapping[str, Any], where: str) -> LegStatus | None:
    if not details:
        return None
    raw_status = _text(details, V2.STATUS, where=where)
    return LegStatus(
        index=index,
        status=normalise_status(raw_status),
        exotel_status=raw_status,
        phone_number=_text(details, V2.CONTACT_URI, where=where),
    )


def _v2_agent(agent: Mapping[str, Any], where: str) -> AssignedAgent | None:
    found = {
        "user_id": _text(agent, V2.USER_ID, where=where),
        "user_name": _text(agent, V2.USER_NAME, where=where),
        "group_id": _text(agent, V2.GROUP_ID, where=where),
        "group_name": _text(agent, V2.GROUP_NAME, where=where),
    }
    return AssignedAgent(**found) if any(found.values()) else None


def _parse_v2(details: Mapping[str, Any], where: str, direction: str | None) -> dict[str, Any]:
    agent_where = f"{where}assigned_agent_details."
    customer_where = f"{where}customer_details."
    agent = _mapping(details, V2.AGENT_DETAILS, where=where)
    customer = _mapping(details, V2.CUSTOMER_DETAILS, where=where)
    inbound = (direction or "").lower().startswith("inbound")
    first, first_where = (customer, customer_where) if inbound else (agent, agent_where)
    second, second_where = (agent, agent_where) if inbound else (customer, customer_where)
    legs = [_ccm_leg(0, first, first_where), _ccm_leg(1, second, second_where)]
    return {
        "api": "v2",
        "call_sid": _sid(details, V2.CALL_SID, where=where, required=True),
        "from_": _text(first, V2.CONTACT_URI, where=first_where) if first else None,
        "to": _text(second, V2.CONTACT_URI, where=second_where) if second else None,
        "legs": [leg for leg in legs if leg is not None],
        "assigned_agent": _v2_agent(agent, agent_where) if agent else None,
    }


def _parse_ccm(payload: Mapping[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    event = _mapping(payload, Ccm.EVENT_DETAILS)
    details = _mapping(payload, Ccm.CALL_DETAILS)
    if not details:
        raise UnreadableCallback("call_details is missing")
    event_type = _event_type(
        _text(event, Ccm.EVENT_TYPE, where="event_details."), where="event_details.event_type"
    )
    where = "call_details."
    recordings = _recordings(details)
    talk_time = _count(details, Ccm.TOTAL_TALK_TIME, where=where)
    result: dict[str, Any] = {
        "event_type": event_type,
        "direction": _text(details, Ccm.DIRECTION, where=where),
        "caller_id": _text(details, Ccm.VIRTUAL_NUMBER, where=where),
        "started_at": _time(details, Ccm.START_TIME, tz, where=where),
        "ended_at": _time(details, Ccm.END_TIME, tz, where=where),
        "conversation_duration": talk_time,
        "total_talk_time": talk_time,
        "recording_url": recordings[0] if recordings else None,
        "recording_urls": recordings,
        "custom_field": _text(details, Ccm.CUSTOM_FIELD, where=where),
        "digits": _text(details, Ccm.DIGITS, where=where),
        "app_id": _text(details, Ccm.APP_ID, where=where),
        "app_name": _text(details, Ccm.APP_NAME, where=where),
    }
    if _has(details, V2.CALL_SID):  # v2 (ccm-api .../v2/...)
        raw_status = _text(details, V2.CALL_STATUS, where=where)
        result |= _parse_v2(details, where, result["direction"])
    else:  # v3: "sid", "state", "status"; legs is a URL to the legs API
        raw_status = _text(details, V3.STATUS, where=where)
        result |= {"api": "v3", "call_sid": _sid(details, V3.SID, where=where, required=True)}
    result["status"] = _call_status(raw_status, event_type)
    result["exotel_status"] = raw_status
    return result


def _parse_lwb(payload: Mapping[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    event_type = _event_type(_text(payload, Lwb.EVENT_TYPE), where=Lwb.EVENT_TYPE)
    raw_status = _text(payload, Lwb.STATUS)
    leg_sid = _sid(payload, Lwb.LEG_SID, required=False)
    origin = _text(payload, Lwb.ORIGIN)
    leg = LegStatus(
        index=0,
        status=normalise_status(raw_status),
        exotel_status=raw_status,
        on_call_duration=_count(payload, Lwb.ON_CALL_DURATION),
        leg_sid=leg_sid,
        phone_number=_text(payload, Lwb.LEG_PHONE_NUMBER),
        origin=origin,
    )
    return {
        "api": "lwb",
        "call_sid": _sid(payload, Lwb.CALL_SID, required=True),
        "leg_sid": leg_sid,
        "event_type": event_type,
        "status": _call_status(raw_status, event_type),
        "exotel_status": raw_status,
        "started_at": _time(payload, Lwb.START_TIME, tz),
        "ended_at": _time(payload, Lwb.END_TIME, tz),
        "origin": origin,
        "last_action": _text(payload, Lwb.LAST_ACTION),
        "custom_field": _text(payload, Lwb.LEG_CUSTOM_FIELD),
        "legs": [leg],
    }


def strip_quotes(digits: str | None) -> str | None:
    """A Passthru's ``digits`` without the double quotes Exotel wraps them in."""
    if digits is None:
        return None
    return digits.strip().strip('"').strip() or None


def _parse_passthru(payload: Mapping[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    call_type = _text(payload, Passthru.CALL_TYPE)
    call_status = _text(payload, Passthru.CALL_STATUS)
    direction = _text(payload, Passthru.DIRECTION)
    if direction is not None and direction.lower() in (Passthru.INCOMING, "inbound"):
        direction = "inbound"
    to = _text(payload, Passthru.CALL_TO) or _text(payload, Passthru.TO)
    recording = _text(payload, Passthru.RECORDING_URL)
    return {
        "api": "passthru",
        "call_sid": _sid(payload, Passthru.CALL_SID, required=True),
        "event_type": "flow",
        "status": flow_status(call_status, call_type),
        "exotel_status": call_status or call_type,
        "call_type": call_type,
        "direction": direction,
        "from_": _text(payload, Passthru.CALL_FROM) or _text(payload, Passthru.FROM),
        "to": to,
        "caller_id": to if direction == "inbound" else None,
        # EndTime is always the epoch in IST (passthru-applet.txt), never the real end.
        "started_at": _time(payload, Passthru.START_TIME, tz),
        "dial_call_duration": _count(payload, Passthru.DIAL_CALL_DURATION),
        "dial_whom_number": _text(payload, Passthru.DIAL_WHOM_NUMBER),
        "digits": strip_quotes(_text(payload, Passthru.DIGITS)),
        "recording_url": recording,
        "recording_urls": _one(recording),
        "app_id": _text(payload, Passthru.FLOW_ID),
        "custom_field": _text(payload, Passthru.CUSTOM_FIELD),
    }


def _is_leg_event(payload: Mapping[str, Any], hint: str | None) -> bool:
    return hint == "lwb" or any(_has(payload, name) for name in Lwb.ONLY_IN_LEG_EVENTS)


def detect_api(payload: Mapping[str, Any], *, hint: str | None = None) -> ApiName:
    """Which API's callback this is, from its content (keys in any spelling).

    ``hint`` is the signed correlation parameter ``api`` of the callback URL (the executor
    sets ``lwb`` on monitor legs' callbacks): a leg event is recognised by its leg-only keys
    or that hint before anything could read it as the call's own.
    """
    return _detect(fold_keys(payload), hint)


def _detect(folded: Mapping[str, Any], hint: str | None) -> ApiName:
    if _has(folded, Ccm.EVENT_DETAILS) or _has(folded, Ccm.CALL_DETAILS):
        details = folded.get(fold(Ccm.CALL_DETAILS))
        return "v2" if isinstance(details, Mapping) and _has(details, V2.CALL_SID) else "v3"
    if not _has(folded, V1.CALL_SID):
        raise UnreadableCallback("not an Exotel status callback: no call sid")
    if _is_leg_event(folded, hint):
        return "lwb"
    if any(_has(folded, name) for name in Passthru.ONLY_IN_FLOWS):
        return "passthru"
    return "v1"


_PARSERS: Final = {
    "v1": _parse_v1,
    "v2": _parse_ccm,
    "v3": _parse_ccm,
    "lwb": _parse_lwb,
    "passthru": _parse_passthru,
}


# --------------------------------------------------------------------------- identity

_EVENT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:voicebus:call.status")
_EVENT_ID_NAMESPACE_BYTES: Final = _EVENT_ID_NAMESPACE.bytes
#: Flow parameters that change when Exotel repeats one notification (its clock).
_VOLATILE_FLOW_KEYS: Final = frozenset({fold(Passthru.CURRENT_TIME)})


def canonical_json(payload: Mapping[str, Any]) -> str:
    """Sorted keys, no blanks, UTF-8 as is: the same payload always gives the same text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_id_for(
    call_sid: str, leg_sid: str | None, event_type: str, payload: Mapping[str, Any]
) -> str:
    """A stable id for one callback.

    Exotel retries a callback (up to twice) when it gets no 200 within 15 s, and a 200 may
    be lost on the way back; consumers must be able to drop the copies. A retry carries the
    same payload, so the id is derived from the payload itself (canonical JSON: key order
    and whitespace do not matter) and not from anything that changes between deliveries
    (arrival time, request id, the correlation query). Two different callbacks of the same
    call differ in their payload (event type, status, times, leg states), so they get
    different ids: e.g. the two v2 "answered" callbacks of one call. The call sid, leg sid
    and event type are named explicitly so the id never depends on how a shape spells them.
    """
    name = "\x1f".join((call_sid, leg_sid or "", event_type, canonical_json(payload)))
    return uuid5_text(_EVENT_ID_NAMESPACE_BYTES, name)


def uuid5_text(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))``, without building the ``UUID``: the
    SHA-1 of namespace and name, version 5 and the RFC 4122 variant set in its first 16
    bytes, as 8-4-4-4-12 hex digits."""
    digest = bytearray(
        hashlib.sha1(namespace + name.encode("utf-8"), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def flow_event_id(call_sid: str, folded: Mapping[str, Any]) -> str:
    """A stable id for one flow notification: its parameters in any spelling and order,
    without ``CurrentTime`` (Exotel's clock when it sent it), so the same notification
    sent again keeps its id while a later point of the flow (another CallType, digits,
    DialWhomNumber, DialCallDuration ...) gets its own."""
    stable = {k: v for k, v in folded.items() if k not in _VOLATILE_FLOW_KEYS}
    return event_id_for(call_sid, None, "flow", stable)


# --------------------------------------------------------------------------- entry point


def _correlation(query: Mapping[str, str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in CORRELATION_PARAMS:
        value = query.get(name)
        if value is not None and not isinstance(value, str):
            raise UnreadableCallback(f"correlation parameter {name} must be text")
        value = (value or "").strip() or None
        if value is not None and len(value) > MAX_CORRELATION_CHARS:
            raise UnreadableCallback(
                f"correlation parameter {name} is longer than {MAX_CORRELATION_CHARS} characters"
            )
        out[name] = value
    if out["api"] is not None and out["api"] not in _APIS:
        raise UnreadableCallback(f"correlation parameter api must be one of {sorted(_APIS)}")
    return out


def parse_callback(
    payload: Mapping[str, Any],
    *,
    query: Mapping[str, str],
    received_at: datetime,
    tz: ZoneInfo,
    shape: ApiName | None = None,
) -> CallStatusEvent:
    """One decoded callback (JSON object, form fields or GET query) -> a ``call.status`` fact.

    ``query`` holds the callback URL's correlation parameters (``command_id``, ``account``,
    ``api``), set by the executor and signed. The shape is recognised from the payload's
    content (:func:`detect_api`, with ``api`` as a hint for leg events) unless ``shape``
    names it (the Passthru endpoint: ``"passthru"``).
    """
    if not isinstance(payload, Mapping):
        raise UnreadableCallback("payload must be an object")
    check_limits(payload)
    correlation = _correlation(query)
    folded = fold_keys(payload)
    api = shape or _detect(folded, correlation["api"])
    fields = _PARSERS[api](folded, tz)
    raw = dict(payload)
    if api == "passthru":
        event_id = flow_event_id(fields["call_sid"], folded)
    else:
        event_id = event_id_for(
            fields["call_sid"], fields.get("leg_sid"), fields["event_type"], raw
        )
    try:
        return CallStatusEvent(
            **fields,
            event_id=event_id,
            command_id=correlation["command_id"],
            account=correlation["account"],
            source="callback",
            received_at=received_at,
            raw=raw,
        )
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
        raise UnreadableCallback(f"callback does not fit CallStatusEvent ({where})") from exc


def parse_passthru(
    payload: Mapping[str, Any],
    *,
    query: Mapping[str, str],
    received_at: datetime,
    tz: ZoneInfo,
) -> CallStatusEvent:
    """A call flow's Passthru request (its query parameters) -> a ``flow`` fact."""
    return parse_callback(payload, query=query, received_at=received_at, tz=tz, shape="passthru")
