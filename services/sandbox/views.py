"""How calls and legs look in each API's responses (plain dicts, no HTTP), in Exotel's
field names (:mod:`services.exotel.fields`)."""

from __future__ import annotations

import uuid
from typing import Any

from services.exotel.fields import V1, V2, V3, Ccm, Legs, Lwb
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
        V1.SID: call.sid,
        V1.PARENT_CALL_SID: None,
        V1.DATE_CREATED: v1_time(call.created),
        V1.DATE_UPDATED: v1_time(call.updated or call.created),
        V1.ACCOUNT_SID: call.account_sid,
        V1.TO: call.to_number if call.to_number is not None else call.caller_id,
        V1.FROM: call.from_number,
        V1.PHONE_NUMBER_SID: call.caller_id,
        V1.STATUS: status or call.status,
        V1.START_TIME: v1_time(call.start_time or call.created),
        V1.END_TIME: v1_time(call.end_time),
        V1.DURATION: str(call.duration()) if call.ended else None,
        V1.PRICE: v1_price(call),
        V1.DIRECTION: call.direction,
        V1.ANSWERED_BY: "human" if call.ended and answered else None,
        V1.FORWARDED_FROM: None,
        V1.CALLER_NAME: None,
        V1.URI: v1_call_uri(call, connect_json=connect_json),
        V1.RECORDING_URL: call.recording_url(recording_base) if call.ended else None,
    }
    if details:
        first, second = call.parties()
        body[V1.DETAILS] = {
            V1.CONVERSATION_DURATION: call.conversation_duration(),
            V1.leg_status(1): first.status if first else None,
            V1.leg_status(2): second.status if second else None,
            V1.LEGS: [
                {V1.LEG: {V1.LEG_ID: "1", V1.ON_CALL_DURATION: _on_call(first)}},
                {V1.LEG: {V1.LEG_ID: "2", V1.ON_CALL_DURATION: _on_call(second)}},
            ],
        }
    return body


def _on_call(leg: Leg | None) -> int:
    return leg.on_call_duration() if leg else 0


def active_leg(call: Call, leg: Leg) -> dict[str, Any]:
    """One entry of ``activelegs`` (the doc's lowercase keys)."""
    return {
        Lwb.SID: leg.sid,
        Lwb.CALL_SID: call.sid,
        Lwb.ACCOUNT_SID: call.account_sid,
        Lwb.LEG_PHONE_NUMBER: leg.phone_number,
        Lwb.STATUS: leg.status,
        Lwb.ORIGIN: leg.origin,
        Lwb.LAST_ACTION: leg.last_action,
        Lwb.DATE_CREATED: v1_time(leg.created),
        Lwb.DATE_UPDATED: v1_time(leg.updated),
        Lwb.URI: f"/v1/Accounts/{call.account_sid}/Calls/{call.sid}/activelegs",
    }


def lwb_leg(call: Call, leg: Leg, *, hangup: bool = False, with_leg_uri: bool) -> dict[str, Any]:
    """The leg in a create / upgrade / hangup answer (lowercase keys, as documented)."""
    uri = f"/v1/Accounts/{call.account_sid}/Calls/{call.sid}/legs"
    body: dict[str, Any] = {
        Lwb.SID: leg.sid,
        Lwb.CALL_SID: call.sid,
        Lwb.ACCOUNT_SID: call.account_sid,
        Lwb.LEG_PHONE_NUMBER: leg.phone_number,
        Lwb.STATUS: "in-progress",  # the documented answers always say in-progress
        Lwb.ORIGIN: leg.origin,
        Lwb.LAST_ACTION: leg.last_action,
        Lwb.DATE_CREATED: v1_time(leg.created),
        Lwb.DATE_UPDATED: v1_time(leg.updated),
        Lwb.START_TIME: v1_time(leg.answered_at or leg.created),
    }
    if hangup:
        body[Lwb.EXOPHONE] = call.caller_id
        body[Lwb.BACKUP_EXOPHONE] = call.caller_id
    body[Lwb.URI] = f"{uri}/{leg.sid}" if with_leg_uri else uri
    return body


def completed_leg(call: Call, leg: Leg) -> dict[str, Any]:
    """One entry of the completed-call Legs API (CamelCase keys)."""
    return {
        Legs.SID: leg.sid,
        Legs.CALL_SID: call.sid,
        Legs.ACCOUNT_SID: call.account_sid,
        Legs.PHONE_NUMBER: leg.phone_number,
        Legs.STATUS: leg.status,
        Legs.ORIGIN: leg.origin,
        Legs.LAST_ACTION: leg.last_action,
        Legs.DATE_CREATED: v1_time(leg.created),
        Legs.DATE_UPDATED: v1_time(leg.updated),
        Legs.ON_CALL_DURATION: leg.on_call_duration(),
        Legs.URI: f"/v1/Accounts/{call.account_sid}/Calls/{call.sid}/Legs/{leg.sid}",
    }


def _recordings(call: Call, recording_base: str) -> list[dict[str, str]] | None:
    url = call.recording_url(recording_base) if call.ended else None
    return None if url is None else [{Ccm.URL: url}]


def _user_id(number: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-user:{number}").hex


def _ccm_direction(call: Call) -> str:
    return "inbound" if call.inbound else "outbound"


def v2_call(call: Call, recording_base: str) -> dict[str, Any]:
    """The v2 ``data`` block (POST/GET answers and callbacks)."""
    return {
        V2.CALL_SID: call.sid,
        V2.DIRECTION: _ccm_direction(call),
        V2.VIRTUAL_NUMBER: call.caller_id,
        V2.CALL_STATE: "terminal" if call.ended else "active",
        V2.CALL_STATUS: call.ccm_status if call.ended else None,
        V2.AGENT_DETAILS: {
            V2.USER_ID: _user_id(call.from_number),
            V2.USER_NAME: None,
            V2.CONTACT_URI: call.from_number,
            V2.GROUP_ID: None,
            V2.GROUP_NAME: None,
            V2.STATUS: call.leg_status("agent"),
        },
        V2.CUSTOMER_DETAILS: {
            V2.CONTACT_NAME: None,
            V2.CONTACT_URI: call.to_number,
            V2.STATUS: call.leg_status("customer"),
        },
        V2.CREATED_TIME: v2_time(call.created),
        V2.UPDATED_TIME: v2_time(call.updated or call.created),
        V2.START_TIME: v2_time(call.start_time or call.created),
        V2.END_TIME: v2_time(call.end_time),
        V2.TOTAL_DURATION: call.duration() if call.ended else None,
        V2.TOTAL_TALK_TIME: call.conversation_duration() if call.ended else None,
        V2.CUSTOM_FIELD: call.custom_field,
        V2.APP_ID: call.app_id,
        V2.APP_NAME: call.app_name,
        V2.DIGITS: call.digits,
        V2.RECORDINGS: _recordings(call, recording_base),
    }


def v3_call(call: Call, recording_base: str, *, epoch_end_time: bool = False) -> dict[str, Any]:
    """The v3 ``call_details`` block. ``epoch_end_time``: GET's quirk for active calls."""
    end_time = v3_time(call.end_time)
    if end_time is None and epoch_end_time:
        end_time = EPOCH_IST
    return {
        V3.SID: call.sid,
        V3.DIRECTION: _ccm_direction(call),
        V3.VIRTUAL_NUMBER: call.caller_id,
        V3.STATE: "terminal" if call.ended else "active",
        V3.STATUS: call.ccm_status if call.ended else None,
        V3.LEGS: f"/v3/accounts/{call.account_sid}/calls/{call.sid}/legs",
        V3.CREATED_TIME: v3_time(call.created),
        V3.UPDATED_TIME: v3_time(call.updated or call.created),
        V3.START_TIME: v3_time(call.start_time or call.created),
        V3.END_TIME: end_time,
        V3.TOTAL_DURATION: call.duration() if call.ended else None,
        V3.TOTAL_TALK_TIME: call.conversation_duration() if call.ended else None,
        V3.CUSTOM_FIELD: call.custom_field,
        V3.APP_ID: call.app_id,
        V3.APP_NAME: call.app_name,
        V3.DIGITS: call.digits,
        V3.RECORDINGS: _recordings(call, recording_base),
    }


def _v3_leg(leg: Leg, *, to_side: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        V3.SID: leg.sid,
        V3.NAME: None,
        V3.CONTACT_URI: leg.phone_number,
        V3.DATE_CREATED: v3_time(leg.created),
        V3.DATE_UPDATED: v3_time(leg.updated),
        V3.STATUS: leg.status,
    }
    if to_side:
        body[V3.GROUP_ID] = None
        body[V3.GROUP_NAME] = None
    return body


def v3_legs(call: Call) -> dict[str, Any]:
    """The v3 ``leg_details`` block: user legs under from, the customer under to."""
    attempted = [leg for leg in call.legs if leg.status is not None]
    return {
        V3.CALL_SID: call.sid,
        V3.ACCOUNT_SID: call.account_sid,
        V3.FROM: [_v3_leg(leg, to_side=False) for leg in attempted if leg.role != "customer"],
        V3.TO: [_v3_leg(leg, to_side=True) for leg in attempted if leg.role == "customer"],
    }
