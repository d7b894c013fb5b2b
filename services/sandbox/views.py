"""How calls and legs look in each API's responses (plain dicts, no HTTP)."""

from __future__ import annotations

import uuid
from typing import Any

from services.sandbox.clock import v1_time, v2_time, v3_time
from services.sandbox.state import Call, Leg

EPOCH_IST = "1970-01-01 05:30:00+05:30"  # what v3 GET shows as end_time of an active call


def v1_call_uri(call: Call, *, connect_json: bool = False) -> str:
    if connect_json:  # the connect.json sample really says Calls.json/<sid>
        return f"/v1/Accounts/{call.account_sid}/Calls.json/{call.sid}"
    return f"/v1/Accounts/{call.account_sid}/Calls/{call.sid}"


def v1_price(call: Call) -> str | None:
    if not call.ended:
        return None
    minutes = -(-call.duration() // 60) if call.conversation_duration() else 0
    return f"{minutes * 0.5:.3f}"


def v1_call(
    call: Call,
    recording_base: str,
    *,
    details: bool = False,
    status: str | None = None,
    connect_json: bool = False,
) -> dict[str, Any]:
    """The v1 ``Call`` object (connect, call details, bulk)."""
    answered = call.conversation_duration() > 0 or (
        call.flow_url is not None and call.leg_status("agent") == "completed"
    )
    body: dict[str, Any] = {
        "Sid": call.sid,
        "ParentCallSid": None,
        "DateCreated": v1_time(call.created),
        "DateUpdated": v1_time(call.updated or call.created),
        "AccountSid": call.account_sid,
        "To": call.to_number if call.to_number is not None else call.caller_id,
        "From": call.from_number,
        "PhoneNumberSid": call.caller_id,
        "Status": status or call.status,
        "StartTime": v1_time(call.start_time or call.created),
        "EndTime": v1_time(call.end_time),
        "Duration": str(call.duration()) if call.ended else None,
        "Price": v1_price(call),
        "Direction": "outbound-api",
        "AnsweredBy": "human" if call.ended and answered else None,
        "ForwardedFrom": None,
        "CallerName": None,
        "Uri": v1_call_uri(call, connect_json=connect_json),
        "RecordingUrl": call.recording_url(recording_base) if call.ended else None,
    }
    if details:
        agent, customer = call.leg("agent"), call.leg("customer")
        body["Details"] = {
            "ConversationDuration": call.conversation_duration(),
            "Leg1Status": agent.status if agent else None,
            "Leg2Status": customer.status if customer else None,
            "Legs": [
                {"Leg": {"Id": "1", "OnCallDuration": agent.on_call_duration() if agent else 0}},
                {
                    "Leg": {
                        "Id": "2",
                        "OnCallDuration": customer.on_call_duration() if customer else 0,
                    }
                },
            ],
        }
    return body


def active_leg(call: Call, leg: Leg) -> dict[str, Any]:
    """One entry of ``activelegs`` (the doc's lowercase keys)."""
    return {
        "sid": leg.sid,
        "callsid": call.sid,
        "accountsid": call.account_sid,
        "phonenumber": leg.phone_number,
        "status": leg.status,
        "origin": leg.origin,
        "lastaction": leg.last_action,
        "datecreated": v1_time(leg.created),
        "dateupdated": v1_time(leg.updated),
        "uri": f"/v1/Accounts/{call.account_sid}/Calls/{call.sid}/activelegs",
    }


def lwb_leg(call: Call, leg: Leg, *, hangup: bool = False, with_leg_uri: bool) -> dict[str, Any]:
    """The leg in a create / upgrade / hangup answer (lowercase keys, as documented)."""
    uri = f"/v1/Accounts/{call.account_sid}/Calls/{call.sid}/legs"
    body: dict[str, Any] = {
        "sid": leg.sid,
        "callsid": call.sid,
        "accountsid": call.account_sid,
        "phonenumber": leg.phone_number,
        "status": "in-progress",  # the documented answers always say in-progress
        "origin": leg.origin,
        "lastaction": leg.last_action,
        "datecreated": v1_time(leg.created),
        "dateupdated": v1_time(leg.updated),
        "starttime": v1_time(leg.answered_at or leg.created),
    }
    if hangup:
        body["exophone"] = call.caller_id
        body["backupexophone"] = call.caller_id
    body["uri"] = f"{uri}/{leg.sid}" if with_leg_uri else uri
    return body


def completed_leg(call: Call, leg: Leg) -> dict[str, Any]:
    """One entry of the completed-call Legs API (CamelCase keys)."""
    return {
        "Sid": leg.sid,
        "CallSid": call.sid,
        "AccountSid": call.account_sid,
        "PhoneNumber": leg.phone_number,
        "Status": leg.status,
        "Origin": leg.origin,
        "LastAction": leg.last_action,
        "DateCreated": v1_time(leg.created),
        "DateUpdated": v1_time(leg.updated),
        "OnCallDuration": leg.on_call_duration(),
        "Uri": f"/v1/Accounts/{call.account_sid}/Calls/{call.sid}/Legs/{leg.sid}",
    }


def _recordings(call: Call, recording_base: str) -> list[dict[str, str]] | None:
    url = call.recording_url(recording_base) if call.ended else None
    return None if url is None else [{"url": url}]


def _user_id(number: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-user:{number}").hex


def v2_call(call: Call, recording_base: str) -> dict[str, Any]:
    """The v2 ``data`` block (POST/GET answers and callbacks)."""
    return {
        "call_sid": call.sid,
        "direction": "outbound",
        "virtual_number": call.caller_id,
        "call_state": "terminal" if call.ended else "active",
        "call_status": call.ccm_status if call.ended else None,
        "assigned_agent_details": {
            "user_id": _user_id(call.from_number),
            "user_name": None,
            "contact_uri": call.from_number,
            "group_id": None,
            "group_name": None,
            "status": call.leg_status("agent"),
        },
        "customer_details": {
            "contact_name": None,
            "contact_uri": call.to_number,
            "status": call.leg_status("customer"),
        },
        "created_time": v2_time(call.created),
        "updated_time": v2_time(call.updated or call.created),
        "start_time": v2_time(call.start_time or call.created),
        "end_time": v2_time(call.end_time),
        "total_duration": call.duration() if call.ended else None,
        "total_talk_time": call.conversation_duration() if call.ended else None,
        "custom_field": call.custom_field,
        "app_id": None,
        "app_name": None,
        "digits": None,
        "recordings": _recordings(call, recording_base),
    }


def v3_call(call: Call, recording_base: str, *, epoch_end_time: bool = False) -> dict[str, Any]:
    """The v3 ``call_details`` block. ``epoch_end_time``: GET's quirk for active calls."""
    end_time = v3_time(call.end_time)
    if end_time is None and epoch_end_time:
        end_time = EPOCH_IST
    return {
        "sid": call.sid,
        "direction": "outbound",
        "virtual_number": call.caller_id,
        "state": "terminal" if call.ended else "active",
        "status": call.ccm_status if call.ended else None,
        "legs": f"/v3/accounts/{call.account_sid}/calls/{call.sid}/legs",
        "created_time": v3_time(call.created),
        "updated_time": v3_time(call.updated or call.created),
        "start_time": v3_time(call.start_time or call.created),
        "end_time": end_time,
        "total_duration": call.duration() if call.ended else None,
        "total_talk_time": call.conversation_duration() if call.ended else None,
        "custom_field": call.custom_field,
        "app_id": None,
        "app_name": None,
        "digits": None,
        "recordings": _recordings(call, recording_base),
    }


def _v3_leg(leg: Leg, *, to_side: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sid": leg.sid,
        "name": None,
        "contact_uri": leg.phone_number,
        "date_created": v3_time(leg.created),
        "date_updated": v3_time(leg.updated),
        "status": leg.status,
    }
    if to_side:
        body["group_id"] = None
        body["group_name"] = None
    return body


def v3_legs(call: Call) -> dict[str, Any]:
    """The v3 ``leg_details`` block: user legs under from, the customer under to."""
    attempted = [leg for leg in call.legs if leg.status is not None]
    return {
        "call_sid": call.sid,
        "account_sid": call.account_sid,
        "from": [_v3_leg(leg, to_side=False) for leg in attempted if leg.role != "customer"],
        "to": [_v3_leg(leg, to_side=True) for leg in attempted if leg.role == "customer"],
    }
