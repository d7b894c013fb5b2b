"""A call's details, fetched and made into the call.details fact: Exotel's own samples
(v1 with details, v2, v3 and its legs, the completed-call Legs API) and what is asked of
Exotel for a call of each API, with the fake Exotel."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from contracts.details import CallDetails as CallDetailsFact
from services.executor.commands.exchange import Failed
from services.executor.details import Fetched, details_fact, details_id, fetch_call, plain_read
from services.exotel._payload import load_payload
from services.exotel.models import CallDetails, CompletedCallLeg, V3CallLegs
from tests.exotel.conftest import sample
from tests.support.exotel import FakeExotel, not_found, rejected

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def v1_details() -> CallDetails:
    payload = load_payload(sample("v1_call_details_details_corrected.json"))
    return CallDetails.from_v1_response(payload, IST)


def v2_details() -> CallDetails:
    return CallDetails.from_ccm("v2", load_payload(sample("v2_call_details_terminal.json")), IST)


def v3_details() -> CallDetails:
    return CallDetails.from_ccm("v3", load_payload(sample("v3_call_details_terminal.json")), IST)


def v3_legs() -> V3CallLegs:
    return V3CallLegs.from_response(load_payload(sample("v3_call_legs.json")), IST)


def completed_legs() -> list[CompletedCallLeg]:
    return CompletedCallLeg.list_from(load_payload(sample("completed_call_legs.json")), IST)


def fact(fetched: Fetched, lookup_id: str | None = None) -> CallDetailsFact:
    return details_fact(
        fetched, source="lookup", account="default", fetched_at=NOW, lookup_id=lookup_id
    )


# ------------------------------------------------------------------ the fact


def test_a_v1_call_gives_its_price_answer_durations_recording_and_two_legs() -> None:
    details = fact(Fetched(v1_details()), lookup_id="lk-1")
    assert (details.call_sid, details.api, details.status, details.finished) == (
        "b6cfaf5f5cef3ca0fc937749ef96d245",
        "v1",
        "completed",
        True,
    )
    assert (details.price, details.answered_by, details.duration) == ("1.500", "human", 17)
    assert details.conversation_duration == 8
    assert details.recordings == [
        "https://s3-ap-southeast-1.amazonaws.com/exotelrecordings/Exotel/b6cfaf5f5cef3ca0fc937749ef96d245.mp3"
    ]
    assert details.legs_source == "details"
    assert [(leg.index, leg.status, leg.on_call_duration) for leg in details.legs] == [
        (0, "completed", 21),
        (1, "completed", 8),
    ]
    assert [leg.phone_number for leg in details.legs] == [details.from_, details.to]
    assert details.started_at is not None
    assert details.started_at.utcoffset() == IST.utcoffset(details.started_at.replace(tzinfo=None))
    assert (details.lookup_id, details.source, details.fetched_at) == ("lk-1", "lookup", NOW)
    assert details.raw == {"details": v1_details().raw}


def test_a_v2_call_takes_its_price_from_v1_and_names_its_agent() -> None:
    details = fact(Fetched(v2_details(), v1=v1_details()))
    assert details.api == "v2"
    assert details.price == "1.500", "only v1 call details carry the price"
    assert details.answered_by == "human"
    assert details.conversation_duration == 7, "v2's total_talk_time"
    assert details.agent is not None
    assert (details.agent.user_id, details.agent.name, details.agent.number) == (
        "12898c52573645739e64864ad308f0a9",
        "Sarthak XXXX",
        "+9199531XXXXX",
    )
    assert len(details.recordings) == 1
    assert set(details.raw) == {"details", "v1"}


def test_a_v2_call_without_v1_details_has_no_price_yet() -> None:
    details = fact(Fetched(v2_details()))
    assert (details.price, details.answered_by) == (None, None)


def test_a_v3_call_lists_every_participant_from_its_legs() -> None:
    details = fact(Fetched(v3_details(), v3_legs=v3_legs()))
    assert details.legs_source == "v3_legs"
    assert [(leg.origin, leg.name, leg.exotel_status) for leg in details.legs] == [
        ("from", "Aditya Sharma", "completed"),
        ("from", None, "completed"),
        ("to", "Vikas Sharma", "no-answer"),
        ("to", "Sanjay Mishra", "completed"),
    ]
    assert details.legs[2].status == "no-answer"
    assert details.agent is not None
    assert details.agent.name == "Aditya Sharma"
    assert details.conversation_duration == 59
    assert "legs" in details.raw


def test_the_legs_api_gives_every_participant_with_its_origin() -> None:
    details = fact(Fetched(v1_details(), completed_legs=completed_legs()))
    assert details.legs_source == "legs_api"
    assert [(leg.index, leg.origin, leg.on_call_duration) for leg in details.legs] == [
        (0, "outbound", 25),
        (1, "outbound-dial", 5),
        (2, "outbound-dial", 4),
    ]
    assert details.legs[2].ended_at is not None
    assert len(details.raw["legs"]) == 3


def test_the_same_call_from_the_same_lookup_always_has_the_same_id() -> None:
    assert details_id("c1", "backfill", "lk-1") == details_id("c1", "backfill", "lk-1")
    ids = {
        details_id("c1", "backfill", "lk-1"),
        details_id("c1", "backfill", "lk-2"),
        details_id("c1", "lookup", "lk-1"),
        details_id("c1", "poll", None),
        details_id("c2", "poll", None),
    }
    assert len(ids) == 5


# ------------------------------------------------------------------ what is asked


async def test_a_v1_call_is_its_details_and_its_participants() -> None:
    exotel = (
        FakeExotel()
        .answer("call_details", v1_details())
        .answer("completed_call_legs", completed_legs())
    )
    fetched = await fetch_call(exotel, plain_read, "c1", "v1", all_legs=True)
    assert isinstance(fetched, Fetched)
    assert exotel.requests == [("call_details", ("c1", "v1")), ("completed_call_legs", "c1")]
    assert fetched.completed_legs is not None


async def test_a_v3_call_is_its_details_v1s_for_the_price_and_its_v3_legs() -> None:
    exotel = (
        FakeExotel()
        .answer("call_details", v3_details(), v1_details())
        .answer("call_legs_v3", v3_legs())
    )
    fetched = await fetch_call(exotel, plain_read, "c1", "v3", all_legs=True)
    assert isinstance(fetched, Fetched)
    assert exotel.requests == [
        ("call_details", ("c1", "v3")),
        ("call_details", ("c1", "v1")),
        ("call_legs_v3", "c1"),
    ]
    assert fetched.v1 is not None
    assert fetched.v3_legs is not None


async def test_a_call_the_ccm_api_does_not_know_is_read_from_v1() -> None:
    exotel = FakeExotel().answer("call_details", not_found("Call not found"), v1_details())
    fetched = await fetch_call(exotel, plain_read, "c1", "v2", all_legs=False)
    assert isinstance(fetched, Fetched)
    assert fetched.details.api == "v1"
    assert exotel.requests == [("call_details", ("c1", "v2")), ("call_details", ("c1", "v1"))]


async def test_participants_that_cannot_be_read_leave_the_two_legs_of_the_details() -> None:
    exotel = (
        FakeExotel()
        .answer("call_details", v1_details())
        .answer("completed_call_legs", rejected("Please check the callSID passed"))
    )
    fetched = await fetch_call(exotel, plain_read, "c1", "v1", all_legs=True)
    assert isinstance(fetched, Fetched)
    assert fact(fetched).legs_source == "details"


async def test_an_active_call_is_not_asked_for_its_participants() -> None:
    active = CallDetails.from_ccm("v3", load_payload(sample("v3_call_details_active.json")), IST)
    exotel = FakeExotel().answer("call_details", active, v1_details())
    fetched = await fetch_call(exotel, plain_read, "c1", "v3", all_legs=True)
    assert isinstance(fetched, Fetched)
    assert exotel.operations() == ["call_details", "call_details"]
    assert fact(fetched).finished is False


async def test_an_unknown_call_fails_the_fetch() -> None:
    exotel = FakeExotel().answer("call_details", not_found("Not Found"))
    fetched = await fetch_call(exotel, plain_read, "c1", "v1", all_legs=True)
    assert isinstance(fetched, Failed)
    assert fetched.error.code == "exotel_not_found"
