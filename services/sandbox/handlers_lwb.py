"""Legs: active legs, monitor legs (listen / whisper / barge), hang-up, completed-call legs."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from services.exotel.fields import Legs, Lwb
from services.sandbox import views
from services.sandbox.apirequest import ApiRequest
from services.sandbox.context import Sandbox
from services.sandbox.handlers_v1 import CONTENT_TYPES, find_call, invalid
from services.sandbox.responses import ApiError, v1_response
from services.sandbox.state import Call, Leg, Subscription

MONITOR_ACTIONS = ("listen", "whisper", "barge")
UPGRADES = {("listen", "whisper"), ("whisper", "barge"), ("listen", "barge")}
NOT_IN_PROGRESS = "Given callSid is not in progress"
NO_SUCH_LEG = "Given LegSid does not exist please check the LegSid passed"


def camel(body: dict[str, Any]) -> dict[str, Any]:
    """XML answers use Exotel's CamelCase element names."""
    return {Lwb.PASCAL.get(key, key): value for key, value in body.items()}


def _live_call(sb: Sandbox, req: ApiRequest) -> Call:
    call = find_call(sb, req)
    if call is None or not call.live:
        raise ApiError(404, NOT_IN_PROGRESS)
    return call


async def active_legs(sb: Sandbox, req: ApiRequest) -> Response:
    call = _live_call(sb, req)
    legs = [views.active_leg(call, leg) for leg in call.legs if leg.active]
    return v1_response(
        {Lwb.LEGS: legs},
        as_json=req.as_json,
        xml_children=[(Legs.LEGS, [{Legs.LEG: camel(leg)} for leg in legs])],
    )


def _target(call: Call, sid: str | None, action: str) -> str | None:
    if not sid:
        if action == "whisper":
            raise invalid(Lwb.TARGET_LEG_SID, "TargetLegSid is mandatory when action is whisper")
        return None
    leg = call.find_leg(sid)
    if leg is None or not leg.active:
        raise invalid(Lwb.TARGET_LEG_SID, "TargetLegSid must be an active leg of the call")
    return sid


def _subscriptions(req: ApiRequest) -> list[Subscription]:
    url = req.get(Lwb.STATUS_CALLBACK)
    content_type = req.get(Lwb.STATUS_CALLBACK_CONTENT_TYPE) or "multipart/form-data"
    if content_type not in CONTENT_TYPES:
        raise invalid(Lwb.STATUS_CALLBACK_CONTENT_TYPE, "multipart/form-data or application/json")
    events = req.events() or ["terminal"]
    if any(event != "terminal" for event in events):
        raise invalid(Lwb.STATUS_CALLBACK_EVENTS, "Only terminal is supported")
    return [Subscription("terminal", url, "POST", content_type)] if url else []


async def create_monitor_leg(sb: Sandbox, req: ApiRequest) -> Response:
    call = _live_call(sb, req)
    action = (req.get(Lwb.ACTION) or "").lower()
    if action not in MONITOR_ACTIONS:
        raise invalid(Lwb.ACTION, "Can be listen, whisper or barge")
    phone = req.get(Lwb.PHONE_NUMBER)
    if not phone:
        raise invalid(Lwb.PHONE_NUMBER)
    target = _target(call, req.get(Lwb.TARGET_LEG_SID), action)
    leg = sb.runner.add_monitor(
        call,
        phone,
        action,
        target_leg_sid=target,
        custom_field=req.get(Lwb.CUSTOM_FIELD),
        subscriptions=_subscriptions(req),
    )
    req.record.leg_sid = leg.sid
    body = views.lwb_leg(call, leg, with_leg_uri=False)
    return v1_response({Lwb.LEG: body}, as_json=req.as_json, xml_children=[(Legs.LEG, camel(body))])


def _existing_leg(sb: Sandbox, req: ApiRequest, message: str) -> tuple[Call, Leg]:
    call = find_call(sb, req)
    leg = None if call is None else call.find_leg(req.params.get("leg", ""))
    if call is None or leg is None or leg.ended or call.ended:
        raise ApiError(404, message)
    return call, leg


async def update_leg(sb: Sandbox, req: ApiRequest) -> Response:
    action = (req.get(Lwb.ACTION) or "").lower()
    if action == Lwb.HANGUP:
        call, leg = _existing_leg(sb, req, "Not Found")
        sb.runner.hangup_leg(call, leg)
        body = views.lwb_leg(call, leg, hangup=True, with_leg_uri=True)
        return v1_response(
            {Lwb.LEGS: body}, as_json=req.as_json, xml_children=[(Legs.LEGS, camel(body))]
        )
    if action not in ("whisper", "barge"):
        raise invalid(Lwb.ACTION, "Can be whisper, barge or hangup")
    call, leg = _existing_leg(sb, req, NO_SUCH_LEG)
    if leg.role != "monitor":
        raise ApiError(400, "Only a monitor leg can be upgraded", description=f"{leg.sid}")
    if (leg.last_action, action) not in UPGRADES:
        raise ApiError(
            400,
            f"Invalid action transition from {leg.last_action} to {action}",
            description="Allowed: listen > whisper, whisper > barge, listen > barge",
        )
    target = _target(call, req.get(Lwb.TARGET_LEG_SID), action)
    sb.runner.upgrade(call, leg, action, target)
    body = views.lwb_leg(call, leg, with_leg_uri=True)
    return v1_response({Lwb.LEG: body}, as_json=req.as_json, xml_children=[(Legs.LEG, camel(body))])


async def completed_call_legs(sb: Sandbox, req: ApiRequest) -> Response:
    call = find_call(sb, req)
    if call is None or not call.ended:
        raise ApiError(
            400, "Bad Request", description="Please check the callSID passed", style="legs"
        )
    legs = [views.completed_leg(call, leg) for leg in call.legs if leg.status is not None]
    metadata = {Legs.TOTAL: len(legs), Legs.COUNT: len(legs)}
    return v1_response(
        {Legs.META_DATA: metadata, Lwb.LEGS: legs},
        as_json=req.as_json,
        xml_children=[(Legs.META_DATA, metadata), (Legs.LEGS, [{Legs.LEG: leg} for leg in legs])],
    )
