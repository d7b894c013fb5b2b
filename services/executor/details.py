"""A call's details, fetched from Exotel and made into a ``CallDetails`` fact.

Shared by ``call.lookup`` (one call, or each call of a backfill) and the call watch's
finalisation of every call a few minutes after its terminal status. What is asked:

* the call details of the API that placed the call (v1 when unknown; a v2/v3 ``404``
  falls back to v1): v1 ``Calls/{sid}?details=true``, v2/v3 ``calls/{sid}``;
* for a v2/v3 call, v1's call details too: only v1 has ``Price`` and ``AnsweredBy``;
* when every participant is wanted and the call is finished, its legs: v3's
  ``calls/{sid}/legs`` for a v3 call, else the completed-call Legs API (its own rate-limit
  family). A failure there (the Legs API must be enabled on the account) keeps the two
  legs of the call details; only the first request's failure fails the fetch.

Every request goes through ``read`` (the command's :class:`~.commands.exchange.Exchange`,
with its retries, or a plain one), so each waits for the account's GET budget.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

import structlog

from contracts.commands import ApiVersion
from contracts.details import Agent, CallDetails, CallLeg, DetailsSource, LegsSource
from services.common.call_status import normalise_status
from services.executor.retry import Failed
from services.exotel.errors import ExotelError, ExotelNotFound
from services.exotel.models import CallDetails as ExotelCallDetails
from services.exotel.models import CompletedCallLeg, V3CallLegs

__all__ = [
    "DetailsReader",
    "Fetched",
    "details_fact",
    "details_id",
    "fetch_call",
    "plain_read",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")
Read = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]

_DETAILS_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:voicebus:call.details")


class DetailsReader(Protocol):
    """What a fetch needs from an account's Exotel client."""

    async def call_details(
        self, call_sid: str, api: ApiVersion | None = None
    ) -> ExotelCallDetails: ...

    async def completed_call_legs(self, call_sid: str) -> Sequence[CompletedCallLeg]: ...

    async def call_legs_v3(self, call_sid: str) -> V3CallLegs: ...


async def plain_read(call: Callable[[], Awaitable[T]]) -> T | Failed:
    """One request, no retry: its answer, or its error as :class:`Failed`."""
    try:
        return await call()
    except ExotelError as error:
        return Failed(error, maybe_sent=False)


@dataclass(frozen=True)
class Fetched:
    """Exotel's answers about one call."""

    details: ExotelCallDetails
    #: v1's details of a v2/v3 call (for its price), when they could be read
    v1: ExotelCallDetails | None = None
    completed_legs: Sequence[CompletedCallLeg] | None = None
    v3_legs: V3CallLegs | None = None


async def fetch_call(
    reader: DetailsReader,
    read: Read,
    call_sid: str,
    api: ApiVersion,
    *,
    all_legs: bool,
) -> Fetched | Failed:
    """The call's details (see the module docstring); ``Failed`` when the first request
    (after the v1 fallback) failed."""
    details = await read(lambda: reader.call_details(call_sid, api))
    if isinstance(details, Failed) and api != "v1" and isinstance(details.error, ExotelNotFound):
        log.info("details.fallback_to_v1", call_sid=call_sid, api=api)
        api = "v1"
        details = await read(lambda: reader.call_details(call_sid, "v1"))
    if isinstance(details, Failed):
        return details
    v1: ExotelCallDetails | None = None
    if api != "v1":
        answer = await read(lambda: reader.call_details(call_sid, "v1"))
        v1 = None if isinstance(answer, Failed) else answer
    if not all_legs or not details.is_terminal:
        return Fetched(details, v1)
    if api == "v3":
        legs = await read(lambda: reader.call_legs_v3(call_sid))
        if not isinstance(legs, Failed):
            return Fetched(details, v1, v3_legs=legs)
    else:
        completed = await read(lambda: reader.completed_call_legs(call_sid))
        if not isinstance(completed, Failed):
            return Fetched(details, v1, completed_legs=completed)
    log.info("details.legs_unavailable", call_sid=call_sid, api=api)
    return Fetched(details, v1)


# ------------------------------------------------------------------ the fact


def details_id(call_sid: str, source: DetailsSource, lookup_id: str | None) -> str:
    """Stable: the same call from the same source and lookup always has the same id."""
    name = "\x1f".join((call_sid, source, lookup_id or ""))
    return str(uuid.uuid5(_DETAILS_NAMESPACE, name))


def _seconds(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None


def details_fact(
    fetched: Fetched,
    *,
    source: DetailsSource,
    account: str,
    fetched_at: datetime,
    lookup_id: str | None = None,
    command_id: str | None = None,
) -> CallDetails:
    """The ``call.details`` fact of what was fetched."""
    call, v1 = fetched.details, fetched.v1
    billing = call if call.api == "v1" else v1
    legs, legs_source = _legs(fetched)
    raw: dict[str, Any] = {"details": call.raw}
    if v1 is not None:
        raw["v1"] = v1.raw
    if fetched.completed_legs is not None:
        raw["legs"] = [leg.raw for leg in fetched.completed_legs]
    elif fetched.v3_legs is not None:
        raw["legs"] = fetched.v3_legs.raw
    return CallDetails(
        details_id=details_id(call.call_sid, source, lookup_id),
        call_sid=call.call_sid,
        source=source,
        lookup_id=lookup_id,
        command_id=command_id,
        account=account,
        api=call.api,
        status=normalise_status(call.status) or "unknown",
        exotel_status=call.status,
        finished=call.is_terminal,
        direction=call.direction or (v1.direction if v1 else None),
        from_=call.from_number or (v1.from_number if v1 else None),
        to=call.to_number or (v1.to_number if v1 else None),
        caller_id=call.caller_id,
        created_at=call.created_time,
        started_at=call.start_time,
        ended_at=call.end_time,
        duration=_seconds(call.duration if call.duration is not None else _v1(v1, "duration")),
        conversation_duration=_seconds(call.conversation_duration),
        price=billing.price if billing else None,
        answered_by=billing.answered_by if billing else None,
        recordings=call.recording_urls or (v1.recording_urls if v1 else []),
        digits=call.digits,
        agent=_agent(fetched),
        custom_field=call.custom_field,
        legs=legs,
        legs_source=legs_source,
        fetched_at=fetched_at,
        raw=raw,
    )


def _v1(v1: ExotelCallDetails | None, name: str) -> Any:
    return getattr(v1, name) if v1 is not None else None


def _agent(fetched: Fetched) -> Agent | None:
    agent = fetched.details.agent
    if agent is not None:
        return Agent(
            user_id=agent.user_id,
            name=agent.name,
            number=agent.contact_uri,
            group_id=agent.group_id,
            group_name=agent.group_name,
        )
    v3 = fetched.v3_legs
    if v3 is not None and (fetched.details.direction or "").startswith("outbound"):
        first = next((leg for leg in v3.from_legs if leg.name), None)
        if first is not None:
            return Agent(
                name=first.name,
                number=first.contact_uri,
                group_id=first.group_id,
                group_name=first.group_name,
            )
    return None


def _legs(fetched: Fetched) -> tuple[list[CallLeg], LegsSource]:
    if fetched.completed_legs is not None:
        return [
            CallLeg(
                index=index,
                leg_sid=leg.sid,
                phone_number=leg.phone_number,
                origin=leg.origin,
                status=normalise_status(leg.status),
                exotel_status=leg.status,
                on_call_duration=_seconds(leg.on_call_duration),
                started_at=leg.start_time or leg.date_created,
                ended_at=leg.end_time,
            )
            for index, leg in enumerate(fetched.completed_legs)
        ], "legs_api"
    if fetched.v3_legs is not None:
        sides = [*fetched.v3_legs.from_legs, *fetched.v3_legs.to_legs]
        return [
            CallLeg(
                index=index,
                leg_sid=leg.sid,
                phone_number=leg.contact_uri,
                name=leg.name,
                origin=leg.side,
                status=normalise_status(leg.status),
                exotel_status=leg.status,
                started_at=leg.date_created,
            )
            for index, leg in enumerate(sides)
        ], "v3_legs"
    call = fetched.details
    numbers = {0: call.from_number, 1: call.to_number}
    return [
        CallLeg(
            index=leg.index,
            phone_number=numbers.get(leg.index),
            status=normalise_status(leg.status),
            exotel_status=leg.status,
            on_call_duration=_seconds(leg.on_call_duration),
        )
        for leg in call.legs
    ], "details"
