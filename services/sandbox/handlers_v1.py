"""v1 Calls API: connect (two numbers or a flow), call details, bulk call details."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from services.exotel.fields import V1
from services.sandbox import clock, numbers, views
from services.sandbox.apirequest import ApiRequest
from services.sandbox.context import Sandbox
from services.sandbox.responses import ApiError, v1_response
from services.sandbox.state import Call, Subscription, new_sid

CONTENT_TYPES = ("multipart/form-data", "application/json")
EVENTS = ("terminal", "answered")


def invalid(name: str, detail: str | None = None) -> ApiError:
    return ApiError(400, f"Invalid parameter {name} is missing or invalid", description=detail)


def parse_bool(name: str, value: str | None) -> bool:
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise invalid(name, "Can be true or false")


def parse_int(name: str, value: str | None, maximum: int | None = None) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise invalid(name, "Must be an integer") from None
    if number < 0 or (maximum is not None and number > maximum):
        raise invalid(name, f"Must be between 0 and {maximum}")
    return number


def find_call(sb: Sandbox, req: ApiRequest) -> Call | None:
    call = sb.store.get(req.params.get("call", ""))
    if call is None or call.account_sid != req.account_sid:
        return None
    return call


async def connect(sb: Sandbox, req: ApiRequest) -> Response:
    from_number, to_number, flow_url = req.get(V1.FROM), req.get(V1.TO), req.get(V1.URL)
    caller_id = req.get(V1.CALLER_ID)
    if not from_number:
        raise invalid(V1.FROM)
    if not to_number and not flow_url:
        raise invalid(V1.TO, "Either To or Url is mandatory")
    if not caller_id:
        raise invalid(V1.CALLER_ID)
    if numbers.is_unknown_exophone(caller_id):
        raise ApiError(
            400,
            f"Invalid parameter CallerId {caller_id} is not an ExoPhone of this account",
            description="CallerId must be one of the account's ExoPhones",
        )
    record = parse_bool(V1.RECORD, req.get(V1.RECORD))
    channels = req.get(V1.RECORDING_CHANNELS)
    if channels and channels not in ("single", "dual"):
        raise ApiError(400, "Valid values for RecordingChannels are single, dual")
    rec_format = req.get(V1.RECORDING_FORMAT)
    if rec_format and rec_format not in ("mp3", "mp3-hq"):
        raise ApiError(400, "Valid values for RecordingFormat are mp3, mp3-hq")
    time_limit = parse_int(V1.TIME_LIMIT, req.get(V1.TIME_LIMIT), 14400)
    time_out = parse_int(V1.TIME_OUT, req.get(V1.TIME_OUT))
    content_type = req.get(V1.STATUS_CALLBACK_CONTENT_TYPE) or "multipart/form-data"
    if content_type not in CONTENT_TYPES:
        raise invalid(V1.STATUS_CALLBACK_CONTENT_TYPE, "multipart/form-data or application/json")
    events = req.events()
    if any(event not in EVENTS for event in events):
        raise invalid(V1.STATUS_CALLBACK_EVENTS, "Can be terminal and/or answered")
    at = clock.now()
    call = Call(
        sid=new_sid(),
        account_sid=req.account_sid,
        api="v1",
        from_number=from_number,
        to_number=to_number if not flow_url else None,
        caller_id=caller_id,
        created=at,
        updated=at,
        flow_url=flow_url or None,
        record=record,
        recording_channels=channels,
        recording_format=rec_format,
        time_limit=time_limit,
        time_out=time_out,
        custom_field=req.get(V1.CUSTOM_FIELD),
        request=dict(req.form_items) if req.form_items else dict(req.body_json or {}),
        callback_content_type=content_type,
    )
    callback_url = req.get(V1.STATUS_CALLBACK)
    if callback_url:
        wanted = ["default"] if flow_url or not events else events
        call.subscriptions = [
            Subscription(event, callback_url, "POST", content_type) for event in wanted
        ]
    sb.runner.start(call)
    req.record.call_sid = call.sid
    body = views.v1_call(
        call, sb.settings.recording_base_url, status="in-progress", connect_json=req.as_json
    )
    return v1_response({V1.CALL: body}, as_json=req.as_json)


async def call_details(sb: Sandbox, req: ApiRequest) -> Response:
    call = find_call(sb, req)
    if call is None:
        raise ApiError(404, "Not Found", description=f"Call {req.params.get('call')} was not found")
    details = req.query.get("details", "").lower() == "true"
    body = views.v1_call(call, sb.settings.recording_base_url, details=details)
    return v1_response({V1.CALL: body}, as_json=req.as_json)


def _parse_when(value: str) -> datetime:
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=clock.IST)
    except ValueError:
        raise invalid(V1.DATE_CREATED, "Use gte:YYYY-MM-DD HH:mm:ss;lte:...") from None


def _date_filter(value: str) -> tuple[datetime | None, datetime | None]:
    low = high = None
    for part in filter(None, value.split(";")):
        op, _, when = part.partition(":")
        if op == "gte":
            low = _parse_when(when)
        elif op == "lte":
            high = _parse_when(when)
        elif op == "eq":
            low = high = _parse_when(when)
        else:
            low = high = _parse_when(part)
    return low, high


def _matches(call: Call, query: dict[str, str]) -> bool:
    def listed(name: str) -> list[str]:
        return [item.strip() for item in query.get(name, "").split(",") if item.strip()]

    if (sids := listed(V1.SID)) and call.sid not in sids:
        return False
    if (froms := listed(V1.FROM)) and not any(
        numbers.same_number(call.from_number, f) for f in froms
    ):
        return False
    if (tos := listed(V1.TO)) and not any(
        numbers.same_number(call.to_number or "", t) for t in tos
    ):
        return False
    if (vns := listed(V1.PHONE_NUMBER)) and not any(
        numbers.same_number(call.caller_id, v) for v in vns
    ):
        return False
    if (statuses := listed(V1.STATUS)) and call.status not in statuses:
        return False
    if (directions := listed(V1.DIRECTION)) and call.direction not in directions:
        return False
    if query.get(V1.DATE_CREATED):
        low, high = _date_filter(query[V1.DATE_CREATED])
        created = call.created.replace(microsecond=0)
        if (low and created < low) or (high and created > high):
            return False
    return True


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _offset(cursor: str) -> int:
    try:
        return max(0, int(base64.urlsafe_b64decode(cursor.encode()).decode()))
    except (ValueError, binascii.Error):
        raise invalid("After/Before", "Unknown cursor") from None


async def bulk_calls(sb: Sandbox, req: ApiRequest) -> Response:
    query = req.query
    page_size = parse_int(V1.PAGE_SIZE, query.get(V1.PAGE_SIZE), 100) or 50
    sort = query.get(V1.SORT_BY, "DateCreated:desc")
    calls = [
        call
        for call in sb.store
        if call.account_sid == req.account_sid and call.ended and _matches(call, query)
    ]
    calls.sort(key=lambda call: call.created, reverse=not sort.endswith(":asc"))
    start = 0
    if query.get(V1.AFTER):
        start = _offset(query[V1.AFTER])
    elif query.get(V1.BEFORE):
        start = max(0, _offset(query[V1.BEFORE]) - page_size)
    page = calls[start : start + page_size]
    base = req.path
    keep = {k: v for k, v in query.items() if k not in (V1.AFTER, V1.BEFORE)}
    keep[V1.PAGE_SIZE] = str(page_size)

    def uri(extra: dict[str, str]) -> str:
        return f"{base}?{urlencode({**keep, **extra})}"

    metadata: dict[str, Any] = {
        V1.TOTAL: len(calls),
        V1.PAGE_SIZE: len(page),
        V1.FIRST_PAGE_URI: uri({}),
        V1.PREV_PAGE_URI: uri({V1.BEFORE: _cursor(start)}) if start > 0 else None,
        V1.NEXT_PAGE_URI: uri({V1.AFTER: _cursor(start + page_size)})
        if start + page_size < len(calls)
        else None,
    }
    rendered = [views.v1_call(call, sb.settings.recording_base_url) for call in page]
    return v1_response(
        {V1.METADATA: metadata, V1.CALLS: rendered},
        as_json=req.as_json,
        xml_children=[(V1.METADATA, metadata), *((V1.CALL, body) for body in rendered)],
    )
