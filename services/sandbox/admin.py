"""The ``/_sandbox`` admin API tests use to inspect and steer the sandbox (no auth)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.exotel.fields import Spelling
from services.sandbox.clock import iso
from services.sandbox.context import Sandbox
from services.sandbox.faults import ChaosSpec, FaultSpec
from services.sandbox.inbound import InboundSpec
from services.sandbox.settings import CallbackSpelling
from services.sandbox.state import Call, CallbackRecord, Leg

M = TypeVar("M", bound=BaseModel)


class LatencySpec(BaseModel):
    seconds: float = Field(ge=0)


class RateLimitSpec(BaseModel):
    voice_calls_per_minute: int | None = Field(default=None, ge=0)
    get_per_minute: int | None = Field(default=None, ge=0)
    legs_per_minute: int | None = Field(default=None, ge=0)
    enabled: bool | None = None


class SpellingSpec(BaseModel):
    spelling: CallbackSpelling


def _sb(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def _model(request: Request, model: type[M]) -> M | JSONResponse:
    try:
        raw = await request.body()
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        return JSONResponse({"error": exc.errors(include_url=False)}, status_code=422)


def _leg_view(leg: Leg) -> dict[str, Any]:
    return {
        "sid": leg.sid,
        "role": leg.role,
        "origin": leg.origin,
        "phone_number": leg.phone_number,
        "status": leg.status,
        "last_action": leg.last_action,
        "target_leg_sid": leg.target_leg_sid,
        "created": iso(leg.created),
        "answered_at": None if leg.answered_at is None else iso(leg.answered_at),
        "ended_at": None if leg.ended_at is None else iso(leg.ended_at),
        "on_call_duration": leg.on_call_duration(),
    }


def _callback_view(record: CallbackRecord) -> dict[str, Any]:
    return {
        "event": record.event,
        "leg_sid": record.leg_sid,
        "url": record.url,
        "method": record.method,
        "content_type": record.content_type,
        "payload": record.payload,
        "delivered": record.delivered,
        "finished": record.finished,
        "attempts": [
            {
                "attempt": attempt.attempt,
                "at": iso(attempt.at),
                "status_code": attempt.status_code,
                "error": attempt.error,
                "elapsed_seconds": attempt.elapsed_seconds,
            }
            for attempt in record.attempts
        ],
    }


def call_view(call: Call) -> dict[str, Any]:
    return {
        "sid": call.sid,
        "account_sid": call.account_sid,
        "api": call.api,
        "status": call.status,
        "ccm_status": call.ccm_status,
        "phase": call.phase,
        "ended": call.ended,
        "end_cause": call.end_cause,
        "from": call.from_number,
        "to": call.to_number,
        "caller_id": call.caller_id,
        "flow_url": call.flow_url,
        "direction": call.direction,
        "app_id": call.app_id,
        "digits": call.digits,
        "custom_field": call.custom_field,
        "created": iso(call.created),
        "start_time": None if call.start_time is None else iso(call.start_time),
        "end_time": None if call.end_time is None else iso(call.end_time),
        "conversation_duration": call.conversation_duration(),
        "request": call.request,
        "legs": [_leg_view(leg) for leg in call.legs],
        "callbacks": [_callback_view(record) for record in call.callbacks],
    }


async def health(request: Request) -> Response:
    sb = _sb(request)
    return JSONResponse({"status": "ok", "account_sid": sb.settings.account_sid})


async def requests_list(request: Request) -> Response:
    sb = _sb(request)
    if request.method == "DELETE":
        sb.requests.clear()
        return JSONResponse({"cleared": True})
    since = int(request.query_params.get("since", "0") or 0)
    return JSONResponse(
        sb.requests.entries(since=since, call_sid=request.query_params.get("call_sid"))
    )


async def faults(request: Request) -> Response:
    sb = _sb(request)
    if request.method == "DELETE":
        sb.faults.clear()
        return JSONResponse(sb.faults.view())
    if request.method == "GET":
        return JSONResponse(sb.faults.view())
    spec = await _model(request, FaultSpec)
    if isinstance(spec, Response):
        return spec
    sb.faults.add(spec)
    return JSONResponse(sb.faults.view())


async def chaos(request: Request) -> Response:
    sb = _sb(request)
    spec = await _model(request, ChaosSpec)
    if isinstance(spec, Response):
        return spec
    sb.faults.set_chaos(spec)
    return JSONResponse(sb.faults.view())


async def latency(request: Request) -> Response:
    sb = _sb(request)
    spec = await _model(request, LatencySpec)
    if isinstance(spec, Response):
        return spec
    sb.faults.latency_seconds = spec.seconds
    return JSONResponse(sb.faults.view())


async def rate_limits(request: Request) -> Response:
    sb = _sb(request)
    if request.method == "POST":
        spec = await _model(request, RateLimitSpec)
        if isinstance(spec, Response):
            return spec
        sb.limiter.configure(
            voice=spec.voice_calls_per_minute,
            get=spec.get_per_minute,
            legs=spec.legs_per_minute,
            enabled=spec.enabled,
        )
    limits = sb.limiter.limits
    return JSONResponse(
        {
            "voice_calls_per_minute": limits["voice"],
            "get_per_minute": limits["get"],
            "legs_per_minute": limits["legs"],
            "enabled": sb.limiter.enabled,
        }
    )


async def rate_stats(request: Request) -> Response:
    sb = _sb(request)
    if request.method == "DELETE":
        sb.limiter.reset_stats()
    return JSONResponse(sb.limiter.stats())


async def calls(request: Request) -> Response:
    sb = _sb(request)
    return JSONResponse([call_view(call) for call in sb.store])


async def call_detail(request: Request) -> Response:
    sb = _sb(request)
    call = sb.store.get(request.path_params["sid"])
    if call is None:
        return JSONResponse({"error": "no such call"}, status_code=404)
    return JSONResponse(call_view(call))


async def end_call(request: Request) -> Response:
    sb = _sb(request)
    call = sb.store.get(request.path_params["sid"])
    if call is None:
        return JSONResponse({"error": "no such call"}, status_code=404)
    sb.runner.end_call(call, cause="admin")
    return JSONResponse(call_view(call))


async def inbound(request: Request) -> Response:
    """A caller rings an ExoPhone: its call flow runs (services/sandbox/inbound.py)."""
    sb = _sb(request)
    spec = await _model(request, InboundSpec)
    if isinstance(spec, Response):
        return spec
    call = sb.inbound.start(spec)
    return JSONResponse(call_view(call))


def _spelling_view(spelling: Spelling | None) -> dict[str, str]:
    return {"spelling": spelling or "documented"}


async def callback_spelling(request: Request) -> Response:
    """The key spelling of the callbacks the sandbox sends (``documented``: as documented)."""
    sb = _sb(request)
    if request.method == "POST":
        spec = await _model(request, SpellingSpec)
        if isinstance(spec, Response):
            return spec
        sb.sender.spelling = None if spec.spelling == "documented" else spec.spelling
    return JSONResponse(_spelling_view(sb.sender.spelling))


async def reset(request: Request) -> Response:
    """Forget faults, chaos, latency, requests, rate windows and stats (limits and the
    callback spelling as configured)."""
    sb = _sb(request)
    settings = sb.settings
    sb.faults.clear()
    sb.faults.latency_seconds = 0.0
    sb.requests.clear()
    sb.limiter.configure(
        voice=settings.voice_calls_per_minute,
        get=settings.get_per_minute,
        legs=settings.legs_per_minute,
        enabled=settings.rate_limits_enabled,
    )
    sb.limiter.reset_stats()
    sb.limiter.reset_windows()
    sb.sender.spelling = settings.spelling()
    return JSONResponse({"reset": True})


ROUTES = [
    Route("/_sandbox/health", health, methods=["GET"]),
    Route("/_sandbox/requests", requests_list, methods=["GET", "DELETE"]),
    Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/_sandbox/chaos", chaos, methods=["POST"]),
    Route("/_sandbox/latency", latency, methods=["POST"]),
    Route("/_sandbox/rate-limits", rate_limits, methods=["GET", "POST"]),
    Route("/_sandbox/rate-stats", rate_stats, methods=["GET", "DELETE"]),
    Route("/_sandbox/calls", calls, methods=["GET"]),
    Route("/_sandbox/calls/{sid}", call_detail, methods=["GET"]),
    Route("/_sandbox/calls/{sid}/end", end_call, methods=["POST"]),
    Route("/_sandbox/inbound", inbound, methods=["POST"]),
    Route("/_sandbox/callback-spelling", callback_spelling, methods=["GET", "POST"]),
    Route("/_sandbox/reset", reset, methods=["POST"]),
]
