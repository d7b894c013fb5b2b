"""v2 and v3 (CCM) Calls APIs: make a call, call details, call legs."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from services.exotel.fields import V2, V3
from services.sandbox import clock, numbers, views
from services.sandbox.apirequest import ApiRequest
from services.sandbox.context import Sandbox
from services.sandbox.responses import ApiError, ccm_response
from services.sandbox.state import Api, Call, Subscription, new_sid

CHANNELS = ("single", "dual")
FORMATS = ("mp3", "mp3-hq")
CONTENT_TYPES = ("application/json", "multipart/form-data")


def mandatory(name: str) -> ApiError:
    return ApiError(400, f"{name} is mandatory", code=1001)


def bad(message: str) -> ApiError:
    """Validation failures the docs give no code for (sandbox code 1000)."""
    return ApiError(400, message, code=1000)


def _body(req: ApiRequest) -> dict[str, Any]:
    if req.body_error or not isinstance(req.body_json, dict):
        raise bad("Request body must be a JSON object")
    return req.body_json


def _text(block: Any, key: str) -> str | None:
    value = block.get(key) if isinstance(block, dict) else None
    return None if value in (None, "") else str(value)


def _flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise bad(f"{name} must be true or false")


def _number(value: Any, name: str, maximum: int | None = None) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad(f"{name} must be an integer") from None
    if number < 0 or (maximum is not None and number > maximum):
        raise bad(f"{name} must be between 0 and {maximum}")
    return number


def _subscriptions(value: Any, api: Api) -> list[Subscription]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad("status_callback must be an array")
    found = []
    for item in value:
        if not isinstance(item, dict) or item.get(V3.EVENT) not in ("answered", "terminal"):
            raise bad("status_callback event can be answered or terminal")
        url = _text(item, V3.URL)
        if url is None:
            raise mandatory("status_callback url")
        method = str(item.get(V3.METHOD) or "POST").upper() if api == "v3" else "POST"
        content_type = (
            str(item.get(V3.CONTENT_TYPE) or "application/json")
            if api == "v3"
            else ("application/json")
        )
        if method not in ("GET", "POST"):
            raise bad("status_callback method can be GET or POST")
        if content_type not in CONTENT_TYPES:
            raise bad("status_callback content_type can be application/json or multipart/form-data")
        found.append(Subscription(str(item[V3.EVENT]), url, method, content_type))
    return found


def _check_numbers(sb: Sandbox, from_number: str, virtual_number: str, managed: bool) -> None:
    if numbers.is_unknown_exophone(virtual_number):
        raise ApiError(
            404,
            "Given virtual_number not found",
            code=10716,
            description=f"{virtual_number} is not an ExoPhone of this account",
        )
    if numbers.is_busy_device(from_number) or (managed and sb.store.agent_is_busy(from_number)):
        raise ApiError(
            409,
            "User device is currently busy",
            code=10706,
            description=f"{from_number} is busy on another call",
        )


def _place(sb: Sandbox, req: ApiRequest, call: Call) -> None:
    sb.runner.start(call)
    req.record.call_sid = call.sid


async def v2_create(sb: Sandbox, req: ApiRequest) -> Response:
    body = _body(req)
    from_number = _text(body.get(V2.FROM), V2.USER_CONTACT_URI)
    to_number = _text(body.get(V2.TO), V2.CUSTOMER_CONTACT_URI)
    virtual_number = _text(body, V2.VIRTUAL_NUMBER)
    if from_number is None:
        raise mandatory("from.user_contact_uri")
    if to_number is None:
        raise mandatory("to.customer_contact_uri")
    if virtual_number is None:
        raise mandatory("virtual_number")
    channels = _text(body, V2.RECORDING_CHANNELS)
    if channels is not None and channels not in CHANNELS:
        raise ApiError(400, "Valid values for RecordingChannels are single, dual", code=1002)
    record = _flag(body.get(V2.RECORDING), V2.RECORDING)
    time_limit = _number(body.get(V2.MAX_TIME_LIMIT), V2.MAX_TIME_LIMIT, 14400)
    time_out = _number(body.get(V2.ATTEMPT_TIME_OUT), V2.ATTEMPT_TIME_OUT)
    subscriptions = _subscriptions(body.get(V2.STATUS_CALLBACK), "v2")
    _check_numbers(sb, from_number, virtual_number, managed=True)
    at = clock.now()
    call = Call(
        sid=new_sid(),
        account_sid=req.account_sid,
        api="v2",
        from_number=from_number,
        to_number=to_number,
        caller_id=virtual_number,
        created=at,
        updated=at,
        record=record,
        recording_channels=channels,
        time_limit=time_limit,
        time_out=time_out,
        custom_field=_text(body, V2.CUSTOM_FIELD),
        state_management=True,
        request=body,
        subscriptions=subscriptions,
    )
    _place(sb, req, call)
    return ccm_response("POST", V2.DATA, views.v2_call(call, sb.settings.recording_base_url))


async def v3_create(sb: Sandbox, req: ApiRequest) -> Response:
    body = _body(req)
    from_block = body.get(V3.FROM)
    from_number = _text(from_block, V3.CONTACT_URI)
    to_number = _text(body.get(V3.TO), V3.CONTACT_URI)
    virtual_number = _text(body, V3.VIRTUAL_NUMBER)
    if from_number is None:
        raise mandatory("from.contact_uri")
    if to_number is None:
        raise mandatory("to.contact_uri")
    if virtual_number is None:
        raise mandatory("virtual_number")
    managed = _flag(
        from_block.get(V3.STATE_MANAGEMENT) if isinstance(from_block, dict) else None,
        "from.state_management",
    )
    recording = body.get(V3.RECORDING) or {}
    if not isinstance(recording, dict):
        raise bad("recording must be a JSON block")
    channels = _text(recording, V3.CHANNELS)
    if channels is not None and channels not in CHANNELS:
        raise ApiError(400, "Valid values for RecordingChannels are single, dual", code=1002)
    rec_format = _text(recording, V3.FORMAT)
    if rec_format is not None and rec_format not in FORMATS:
        raise bad("Valid values for recording format are mp3, mp3-hq")
    record = _flag(recording.get(V3.RECORD), "recording.record")
    time_limit = _number(body.get(V3.MAX_TIME_LIMIT), V3.MAX_TIME_LIMIT, 14400)
    time_out = _number(body.get(V3.ATTEMPT_TIME_OUT), V3.ATTEMPT_TIME_OUT)
    subscriptions = _subscriptions(body.get(V3.STATUS_CALLBACK), "v3")
    _check_numbers(sb, from_number, virtual_number, managed=managed)
    at = clock.now()
    call = Call(
        sid=new_sid(),
        account_sid=req.account_sid,
        api="v3",
        from_number=from_number,
        to_number=to_number,
        caller_id=virtual_number,
        created=at,
        updated=at,
        record=record,
        recording_channels=channels,
        recording_format=rec_format,
        time_limit=time_limit,
        time_out=time_out,
        custom_field=_text(body, V3.CUSTOM_FIELD),
        state_management=managed,
        request=body,
        subscriptions=subscriptions,
    )
    _place(sb, req, call)
    return ccm_response(
        "POST", V3.CALL_DETAILS, views.v3_call(call, sb.settings.recording_base_url)
    )


def _find(sb: Sandbox, req: ApiRequest, apis: tuple[Api, ...], error: ApiError) -> Call:
    call = sb.store.get(req.params.get("call", ""))
    if call is None or call.account_sid != req.account_sid or call.api not in apis:
        raise error
    return call


async def v2_get(sb: Sandbox, req: ApiRequest) -> Response:
    call = _find(
        sb, req, ("v2",), ApiError(404, "Call not found / unsupported in this API", code=3043)
    )
    return ccm_response("GET", V2.DATA, views.v2_call(call, sb.settings.recording_base_url))


def _v3_not_found() -> ApiError:
    return ApiError(404, "Call not found", code=10744)


async def v3_get(sb: Sandbox, req: ApiRequest) -> Response:
    call = _find(sb, req, ("v1", "v2", "v3"), _v3_not_found())
    details = views.v3_call(call, sb.settings.recording_base_url, epoch_end_time=True)
    return ccm_response("GET", V3.CALL_DETAILS, details)


async def v3_legs(sb: Sandbox, req: ApiRequest) -> Response:
    call = _find(sb, req, ("v1", "v2", "v3"), _v3_not_found())
    return ccm_response("GET", V3.LEG_DETAILS, views.v3_legs(call))
