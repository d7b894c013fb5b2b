"""Typed views of Exotel's answers, read leniently.

Field names come from :mod:`services.exotel.fields`. Every model keeps the decoded body
(or its own item of it) as ``raw`` and ignores fields it does not know. Keys are matched
case-insensitively (the captured LWB documentation is all lower case; the live API uses
``CamelCase`` for v1 and ``snake_case`` for v2/v3).
Values that cannot be read (a duration of ``"abc"``, a date of ``"0000-00-00"``) become
``None`` rather than failing the whole answer; only a missing identifier (a call or leg
``sid``) is an error, raised as :class:`~services.exotel._payload.PayloadError` (the
client turns it into :class:`~services.exotel.errors.ExotelInvalidResponse`).

Time stamps are timezone-aware: v1 answers carry naive local times, interpreted in the
account's zone (``Asia/Kolkata`` unless configured); v2/v3 carry their own offset. The v3
placeholder ``1970-01-01 05:30:00+05:30`` (epoch zero) for "no end yet" becomes ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from services.exotel._payload import PayloadError, ci_get, first_of, items_of
from services.exotel.accounts import ApiVersion
from services.exotel.fields import V1, V2, V3, Ccm, Legs, Lwb

__all__ = [
    "TERMINAL_V1_STATUSES",
    "ActiveLeg",
    "CallDetails",
    "CompletedCallLeg",
    "Leg",
    "LegDetail",
    "PlacedCall",
    "V3CallLegs",
    "V3Leg",
    "bulk_page",
    "parse_datetime",
]

#: v1 call statuses after which nothing changes any more.
TERMINAL_V1_STATUSES = frozenset({"completed", "failed", "busy", "no-answer", "canceled"})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# ------------------------------------------------------------------ value helpers


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return int(float(text))
    except ValueError:
        return None


def parse_datetime(value: Any, tz: tzinfo) -> datetime | None:
    """Read an Exotel time stamp; naive values are taken to be in ``tz``.

    Accepts ``2017-03-03 10:48:33``, ``2022-11-02 23:49:51+05:30`` and
    ``2021-06-30T02:43:13+05:30``. Blank, unreadable and epoch-zero values give ``None``.
    """
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        if parsed.timestamp() <= 0:
            return None
    except (OverflowError, OSError, ValueError):
        return None
    return parsed


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"expected {what} in Exotel's answer")
    return value


def _require_sid(value: Any, what: str) -> str:
    sid = _text(value)
    if sid is None:
        raise PayloadError(f"Exotel's answer has no {what}")
    return sid


def _raw(payload: Any) -> dict[str, Any]:
    return dict(payload) if isinstance(payload, Mapping) else {"value": payload}


def _ccm_block(payload: Any, key: str) -> Mapping[str, Any]:
    response = ci_get(payload, Ccm.RESPONSE)
    return _mapping(ci_get(response, key), f"response.{key}")


# ------------------------------------------------------------------ placed calls


class PlacedCall(_Model):
    """Exotel's answer to a call request (v1 connect, v2/v3 CCM create).

    ``status`` is Exotel's raw call status (v1 ``in-progress``/``queued``; v2/v3 usually
    ``null`` at creation); ``state`` is the v2/v3 ``call_state``/``state`` (``active``).
    """

    api: ApiVersion
    call_sid: str
    status: str | None = None
    state: str | None = None
    raw: dict[str, Any]

    @classmethod
    def from_v1(cls, payload: Any) -> PlacedCall:
        call = _mapping(ci_get(payload, V1.CALL), "a Call object")
        return cls(
            api="v1",
            call_sid=_require_sid(ci_get(call, V1.SID), "Call.Sid"),
            status=_text(ci_get(call, V1.STATUS)),
            raw=_raw(payload),
        )

    @classmethod
    def from_ccm(cls, api: Literal["v2", "v3"], payload: Any) -> PlacedCall:
        if api == "v2":
            data = _ccm_block(payload, V2.DATA)
            return cls(
                api="v2",
                call_sid=_require_sid(ci_get(data, V2.CALL_SID), "response.data.call_sid"),
                status=_text(ci_get(data, V2.CALL_STATUS)),
                state=_text(ci_get(data, V2.CALL_STATE)),
                raw=_raw(payload),
            )
        details = _ccm_block(payload, V3.CALL_DETAILS)
        return cls(
            api="v3",
            call_sid=_require_sid(ci_get(details, V3.SID), "response.call_details.sid"),
            status=_text(ci_get(details, V3.STATUS)),
            state=_text(ci_get(details, V3.STATE)),
            raw=_raw(payload),
        )


# ------------------------------------------------------------------ call details


class LegDetail(_Model):
    """One leg attempt of a call. ``index`` is 0-based in dialling order (0 = From/agent,
    1 = To/customer), as in the v1 status callback's ``Legs[i]``."""

    index: int
    status: str | None = None
    on_call_duration: int | None = None


class CallDetails(_Model):
    """A call's details, normalised across v1 (``Call`` + ``Details``), v2
    (``response.data``) and v3 (``response.call_details``)."""

    api: ApiVersion
    call_sid: str
    #: Exotel's raw status: v1 ``queued``..``no-answer``; v2/v3 ``completed``,
    #: ``from_leg_unanswered``, ... (``None`` while active).
    status: str | None = None
    #: v2/v3 only: ``active`` or ``terminal``.
    state: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    caller_id: str | None = None
    created_time: datetime | None = None
    updated_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    conversation_duration: int | None = None
    price: str | None = None
    recording_url: str | None = None
    custom_field: str | None = None
    legs: list[LegDetail] = []
    raw: dict[str, Any]

    @property
    def is_terminal(self) -> bool:
        """True once Exotel will not change the call's outcome any more."""
        if self.state is not None:
            return self.state.lower() == "terminal"
        return (self.status or "").lower() in TERMINAL_V1_STATUSES

    @classmethod
    def from_v1_response(cls, payload: Any, tz: tzinfo) -> CallDetails:
        """From a whole ``GET /Calls/{sid}`` answer (``{"Call": {...}}``)."""
        call = _mapping(ci_get(payload, V1.CALL), "a Call object")
        return cls.from_v1(call, tz, raw=_raw(payload))

    @classmethod
    def from_v1(
        cls, call: Mapping[str, Any], tz: tzinfo, *, raw: dict[str, Any] | None = None
    ) -> CallDetails:
        """From one v1 ``Call`` object (as in call details and bulk call details)."""
        details = ci_get(call, V1.DETAILS)
        legs = _v1_legs(details) if isinstance(details, Mapping) else []
        return cls(
            api="v1",
            call_sid=_require_sid(ci_get(call, V1.SID), "Call.Sid"),
            status=_text(ci_get(call, V1.STATUS)),
            direction=_text(ci_get(call, V1.DIRECTION)),
            from_number=_text(ci_get(call, V1.FROM)),
            to_number=_text(ci_get(call, V1.TO)),
            caller_id=_text(first_of(call, V1.PHONE_NUMBER, V1.PHONE_NUMBER_SID)),
            created_time=parse_datetime(ci_get(call, V1.DATE_CREATED), tz),
            updated_time=parse_datetime(ci_get(call, V1.DATE_UPDATED), tz),
            start_time=parse_datetime(ci_get(call, V1.START_TIME), tz),
            end_time=parse_datetime(ci_get(call, V1.END_TIME), tz),
            duration=_int(ci_get(call, V1.DURATION)),
            conversation_duration=_int(ci_get(details, V1.CONVERSATION_DURATION)),
            price=_text(ci_get(call, V1.PRICE)),
            recording_url=_text(ci_get(call, V1.RECORDING_URL)),
            custom_field=_text(ci_get(call, V1.CUSTOM_FIELD)),
            legs=legs,
            raw=raw if raw is not None else _raw(call),
        )

    @classmethod
    def from_ccm(cls, api: Literal["v2", "v3"], payload: Any, tz: tzinfo) -> CallDetails:
        """From a whole v2 (``response.data``) or v3 (``response.call_details``) answer."""
        if api == "v2":
            return cls._from_v2(_ccm_block(payload, V2.DATA), tz, _raw(payload))
        return cls._from_v3(_ccm_block(payload, V3.CALL_DETAILS), tz, _raw(payload))

    @classmethod
    def _from_v2(cls, data: Mapping[str, Any], tz: tzinfo, raw: dict[str, Any]) -> CallDetails:
        agent = ci_get(data, V2.AGENT_DETAILS)
        customer = ci_get(data, V2.CUSTOMER_DETAILS)
        legs: list[LegDetail] = []
        agent_status = _text(ci_get(agent, V2.STATUS))
        customer_status = _text(ci_get(customer, V2.STATUS))
        if agent_status is not None or customer_status is not None:
            legs = [
                LegDetail(index=0, status=agent_status),
                LegDetail(index=1, status=customer_status),
            ]
        return cls(
            api="v2",
            call_sid=_require_sid(ci_get(data, V2.CALL_SID), "response.data.call_sid"),
            status=_text(ci_get(data, V2.CALL_STATUS)),
            state=_text(ci_get(data, V2.CALL_STATE)),
            direction=_text(ci_get(data, V2.DIRECTION)),
            from_number=_text(ci_get(agent, V2.CONTACT_URI)),
            to_number=_text(ci_get(customer, V2.CONTACT_URI)),
            legs=legs,
            raw=raw,
            **_ccm_fields(data, tz),
        )

    @classmethod
    def _from_v3(cls, cd: Mapping[str, Any], tz: tzinfo, raw: dict[str, Any]) -> CallDetails:
        return cls(
            api="v3",
            call_sid=_require_sid(ci_get(cd, V3.SID), "response.call_details.sid"),
            status=_text(ci_get(cd, V3.STATUS)),
            state=_text(ci_get(cd, V3.STATE)),
            direction=_text(ci_get(cd, V3.DIRECTION)),
            raw=raw,
            **_ccm_fields(cd, tz),
        )


def _ccm_fields(block: Mapping[str, Any], tz: tzinfo) -> dict[str, Any]:
    """The fields v2 ``data`` and v3 ``call_details`` share, under the same names."""
    return {
        "caller_id": _text(ci_get(block, Ccm.VIRTUAL_NUMBER)),
        "created_time": parse_datetime(ci_get(block, Ccm.CREATED_TIME), tz),
        "updated_time": parse_datetime(ci_get(block, Ccm.UPDATED_TIME), tz),
        "start_time": parse_datetime(ci_get(block, Ccm.START_TIME), tz),
        "end_time": parse_datetime(ci_get(block, Ccm.END_TIME), tz),
        "duration": _int(ci_get(block, Ccm.TOTAL_DURATION)),
        "conversation_duration": _int(ci_get(block, Ccm.TOTAL_TALK_TIME)),
        "recording_url": _first_recording(ci_get(block, Ccm.RECORDINGS)),
        "custom_field": _text(ci_get(block, Ccm.CUSTOM_FIELD)),
    }


def _v1_legs(details: Mapping[str, Any]) -> list[LegDetail]:
    """``Details.Legs`` (``[{"Leg": {"Id": 1, "OnCallDuration": 21}}, ...]``) joined with
    ``Leg1Status``/``Leg2Status``."""
    by_index: dict[int, LegDetail] = {}
    for item in items_of(details, V1.LEGS, V1.LEG):
        leg_id = _int(ci_get(item, V1.LEG_ID))
        if leg_id is None or leg_id < 1:
            continue
        by_index[leg_id - 1] = LegDetail(
            index=leg_id - 1,
            status=_text(ci_get(details, V1.leg_status(leg_id))),
            on_call_duration=_int(ci_get(item, V1.ON_CALL_DURATION)),
        )
    for leg_id in (1, 2):
        status = _text(ci_get(details, V1.leg_status(leg_id)))
        if status is not None and leg_id - 1 not in by_index:
            by_index[leg_id - 1] = LegDetail(index=leg_id - 1, status=status)
    return [by_index[i] for i in sorted(by_index)]


def _first_recording(recordings: Any) -> str | None:
    if isinstance(recordings, list):
        for item in recordings:
            url = _text(ci_get(item, Ccm.URL)) if isinstance(item, Mapping) else _text(item)
            if url:
                return url
    return None


def bulk_page(payload: Any, tz: tzinfo) -> tuple[list[CallDetails], str | None]:
    """The calls of one bulk call-details page and its ``Metadata.NextPageUri``."""
    calls = [
        CallDetails.from_v1(item, tz)
        for item in items_of(payload, V1.CALLS, V1.CALL)
        if isinstance(item, Mapping)
    ]
    metadata = ci_get(payload, V1.METADATA)
    next_uri = _text(ci_get(metadata, V1.NEXT_PAGE_URI))
    return calls, next_uri


# ------------------------------------------------------------------ legs (LWB, Legs API)


def _leg_fields(leg: Mapping[str, Any], tz: tzinfo) -> dict[str, Any]:
    """The fields every v1 leg object has (active legs, monitor-leg answers, Legs API)."""
    return {
        "sid": _require_sid(ci_get(leg, Lwb.SID), "leg Sid"),
        "call_sid": _text(ci_get(leg, Lwb.CALL_SID)),
        # The documented monitor leg carries "endusernumber" instead of "phonenumber".
        "phone_number": _text(first_of(leg, Lwb.LEG_PHONE_NUMBER, Lwb.END_USER_NUMBER)),
        "status": _text(ci_get(leg, Lwb.STATUS)),
        "origin": _text(ci_get(leg, Lwb.ORIGIN)),
        "last_action": _text(ci_get(leg, Lwb.LAST_ACTION)),
        "date_created": parse_datetime(ci_get(leg, Lwb.DATE_CREATED), tz),
        "date_updated": parse_datetime(ci_get(leg, Lwb.DATE_UPDATED), tz),
    }


class ActiveLeg(_Model):
    """One leg of an ongoing call (``GET .../Calls/{sid}/activelegs``)."""

    sid: str
    call_sid: str | None = None
    phone_number: str | None = None
    status: str | None = None
    #: ``outbound`` (1st leg of connect), ``outbound-dial``, ``inbound`` or ``monitor``.
    origin: str | None = None
    #: For monitor legs: ``listen``, ``whisper`` or ``barge``.
    last_action: str | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    raw: dict[str, Any]

    @classmethod
    def list_from(cls, payload: Any, tz: tzinfo) -> list[ActiveLeg]:
        return [cls.from_item(item, tz) for item in items_of(payload, Lwb.LEGS, Lwb.LEG)]

    @classmethod
    def from_item(cls, item: Any, tz: tzinfo) -> ActiveLeg:
        leg = _mapping(item, "a leg object")
        return cls(
            raw=_raw(leg),
            **_leg_fields(leg, tz),
        )


class Leg(_Model):
    """The leg returned by creating a monitor leg, upgrading it, or hanging a leg up
    (``<Leg>``/``<Legs>`` XML or ``{"Leg": {...}}``/``{"legs": {...}}`` JSON)."""

    sid: str
    call_sid: str | None = None
    account_sid: str | None = None
    phone_number: str | None = None
    status: str | None = None
    origin: str | None = None
    last_action: str | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    start_time: datetime | None = None
    exophone: str | None = None
    raw: dict[str, Any]

    @classmethod
    def from_response(cls, payload: Any, tz: tzinfo) -> Leg:
        items = items_of(payload, Lwb.LEG, Lwb.LEGS)
        if not items or not isinstance(items[0], Mapping):
            raise PayloadError("expected a Leg object in Exotel's answer")
        leg = items[0]
        return cls(
            account_sid=_text(ci_get(leg, Lwb.ACCOUNT_SID)),
            start_time=parse_datetime(ci_get(leg, Lwb.START_TIME), tz),
            **_leg_fields(leg, tz),
            exophone=_text(ci_get(leg, Lwb.EXOPHONE)),
            raw=_raw(payload),
        )


class CompletedCallLeg(_Model):
    """One participant of a completed call (v1 Legs API, ``GET .../Calls/{sid}/Legs``)."""

    sid: str
    call_sid: str | None = None
    phone_number: str | None = None
    status: str | None = None
    origin: str | None = None
    last_action: str | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    on_call_duration: int | None = None
    exophone: str | None = None
    raw: dict[str, Any]

    @classmethod
    def list_from(cls, payload: Any, tz: tzinfo) -> list[CompletedCallLeg]:
        out: list[CompletedCallLeg] = []
        for item in items_of(payload, Legs.LEGS, Legs.LEG):
            leg = _mapping(item, "a leg object")
            out.append(
                cls(
                    start_time=parse_datetime(ci_get(leg, Legs.START_TIME), tz),
                    end_time=parse_datetime(ci_get(leg, Legs.END_TIME), tz),
                    on_call_duration=_int(ci_get(leg, Legs.ON_CALL_DURATION)),
                    exophone=_text(ci_get(leg, Legs.EXOPHONE)),
                    raw=_raw(leg),
                    **_leg_fields(leg, tz),
                )
            )
        return out


class V3Leg(_Model):
    """One leg in v3 ``leg_details.from`` / ``leg_details.to``."""

    side: Literal["from", "to"]
    sid: str | None = None
    name: str | None = None
    contact_uri: str | None = None
    status: str | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    group_id: str | None = None
    group_name: str | None = None
    raw: dict[str, Any]


class V3CallLegs(_Model):
    """v3 ``GET /v3/accounts/{sid}/calls/{call_sid}/legs`` (``response.leg_details``)."""

    call_sid: str
    account_sid: str | None = None
    from_legs: list[V3Leg] = []
    to_legs: list[V3Leg] = []
    raw: dict[str, Any]

    @classmethod
    def from_response(cls, payload: Any, tz: tzinfo) -> V3CallLegs:
        details = _ccm_block(payload, V3.LEG_DETAILS)
        return cls(
            call_sid=_require_sid(ci_get(details, V3.CALL_SID), "response.leg_details.call_sid"),
            account_sid=_text(ci_get(details, V3.ACCOUNT_SID)),
            from_legs=_v3_legs(ci_get(details, V3.FROM), "from", tz),
            to_legs=_v3_legs(ci_get(details, V3.TO), "to", tz),
            raw=_raw(payload),
        )


def _v3_legs(items: Any, side: Literal["from", "to"], tz: tzinfo) -> list[V3Leg]:
    if not isinstance(items, list):
        return []
    return [
        V3Leg(
            side=side,
            sid=_text(ci_get(item, V3.SID)),
            name=_text(ci_get(item, V3.NAME)),
            contact_uri=_text(ci_get(item, V3.CONTACT_URI)),
            status=_text(ci_get(item, V3.STATUS)),
            date_created=parse_datetime(ci_get(item, V3.DATE_CREATED), tz),
            date_updated=parse_datetime(ci_get(item, V3.DATE_UPDATED), tz),
            group_id=_text(ci_get(item, V3.GROUP_ID)),
            group_name=_text(ci_get(item, V3.GROUP_NAME)),
            raw=_raw(item),
        )
        for item in items
        if isinstance(item, Mapping)
    ]
