"""A call flow's Passthru applet -> a ``call.status`` flow event (passthru-applet.txt)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts.status import CallStatusEvent
from services.common.call_status import flow_status
from services.exotel.fields import SPELLINGS, Spelling
from services.ingress.parsing import UnreadableCallback, parse_passthru, strip_quotes
from services.sandbox.payloads import respell
from tests.ingress import samples

IST = ZoneInfo("Asia/Kolkata")
RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SID = "b6cfaf5f5cef3ca0fc937749ef960e25"


def parse(payload: dict[str, Any], query: dict[str, str] | None = None) -> CallStatusEvent:
    return parse_passthru(payload, query=query or {}, received_at=RECEIVED, tz=IST)


def before() -> dict[str, Any]:
    return samples.query_payload("passthru_before_connect.query.txt")


def after() -> dict[str, Any]:
    return samples.query_payload("passthru_after_connect.query.txt")


def test_a_passthru_before_the_connect_applet_is_the_inbound_calls_first_fact() -> None:
    event = parse(before(), {"account": "default"})
    assert event.api == "passthru"
    assert event.event_type == "flow"
    assert event.call_sid == SID
    assert event.leg_sid is None
    assert event.direction == "inbound", "Exotel's 'incoming'"
    assert event.from_ == "0XXXXX30240", "the caller"
    assert event.to == event.caller_id == "0XXXXXX4890", "the ExoPhone"
    assert event.call_type == "call-attempt"
    assert event.status == "unknown", "call-attempt says where the call is, not a status"
    assert event.exotel_status == "call-attempt"
    assert event.digits == "123", "Exotel's double quotes removed"
    assert event.app_id == "926", "flow_id"
    assert event.dial_call_duration == 0
    assert event.dial_whom_number is None
    assert event.started_at == datetime(2017, 2, 17, 14, 16, 3, tzinfo=IST)
    assert event.ended_at is None, "EndTime is always 1970-01-01 05:30:00"
    assert event.account == "default"
    assert event.source == "callback"
    assert event.raw == before(), "every parameter, tenant_id included"
    assert event.raw["digits"] == '"123"'


def test_a_passthru_after_the_connect_applet_names_the_agent_and_the_recording() -> None:
    event = parse(after())
    assert (event.event_type, event.call_type, event.status) == ("flow", "completed", "completed")
    assert event.dial_whom_number == "0XXXXX20000"
    assert event.dial_call_duration == 17
    assert event.recording_url == (
        f"https://s3-ap-southeast-1.amazonaws.com/exotelrecordings/<your_sid>/{SID}.mp3"
    )
    assert event.recording_urls == [event.recording_url]


def test_the_older_articles_from_and_to_are_read_too() -> None:
    event = parse(samples.query_payload("passthru_older_names.query.txt"))
    assert (event.from_, event.to) == ("0XXXXX30240", "0XXXXXX4890")
    assert (event.call_type, event.status) == ("incomplete", "no-answer")


@pytest.mark.parametrize(
    ("call_status", "call_type", "status"),
    [
        (None, "completed", "completed"),
        (None, "incomplete", "no-answer"),
        (None, "client-hangup", "canceled"),
        (None, "call-attempt", "unknown"),
        (None, "voicemail", "unknown"),
        (None, None, "unknown"),
        ("ringing", "call-attempt", "ringing"),
        ("in-progress", None, "in-progress"),
        ("busy", "incomplete", "busy"),
    ],
)
def test_call_types_map_onto_a_status_where_they_mean_one(
    call_status: str | None, call_type: str | None, status: str
) -> None:
    assert flow_status(call_status, call_type) == status
    payload = {"CallSid": SID, "CallType": call_type, "CallStatus": call_status}
    event = parse({k: v for k, v in payload.items() if v is not None})
    assert event.status == status
    assert event.exotel_status == (call_status or call_type)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_any_spelling_reads_alike_and_keeps_the_event_id(spelling: Spelling) -> None:
    documented = parse(before())
    spelled = parse(respell(before(), spelling))
    fields = ("from_", "to", "digits", "app_id", "call_type", "direction", "dial_call_duration")
    assert [getattr(spelled, f) for f in fields] == [getattr(documented, f) for f in fields]
    assert spelled.event_id == documented.event_id


def test_callfrom_as_some_articles_spell_it() -> None:
    payload = {"CallSid": SID, "Callfrom": "0XXXXX30240", "Callto": "0XXXXXX4890"}
    assert (parse(payload).from_, parse(payload).to) == ("0XXXXX30240", "0XXXXXX4890")


def test_a_repeated_notification_keeps_its_event_id_and_a_later_point_gets_its_own() -> None:
    first = parse(before())
    repeated = parse(before() | {"CurrentTime": "2017-02-17 14:16:14"})
    assert repeated.event_id == first.event_id, "only Exotel's clock changed"
    assert parse(after()).event_id != first.event_id
    assert parse(before() | {"digits": '"124"'}).event_id != first.event_id


def test_the_same_call_keeps_its_sid_as_the_key_at_every_point() -> None:
    assert {parse(before()).call_sid, parse(after()).call_sid} == {SID}


@pytest.mark.parametrize(
    ("digits", "stripped"),
    [('"123"', "123"), ("123", "123"), ('""', None), ('"1-2"', "1-2"), (' "9" ', "9")],
)
def test_digits_lose_exotels_quotes(digits: str, stripped: str | None) -> None:
    assert strip_quotes(digits) == stripped


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"CallFrom": "0XXXXX30240", "CallType": "completed"}, "CallSid"),
        ({"CallSid": ""}, "CallSid"),
        ({"CallSid": "has blanks in it"}, "CallSid"),
        ({"CallSid": SID, "DialCallDuration": "soon"}, "DialCallDuration"),
        ({"CallSid": SID, "StartTime": "yesterday"}, "StartTime"),
    ],
)
def test_unreadable_notifications_say_why(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnreadableCallback, match=reason):
        parse(payload)
