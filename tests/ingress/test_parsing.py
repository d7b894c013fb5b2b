"""parse_callback against Exotel's own documented samples (tests/data/callbacks/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts.status import CallStatusEvent
from services.ingress.parsing import (
    MAX_VALUE_CHARS,
    UnreadableCallback,
    decode_json,
    form_to_payload,
    normalise_status,
    parse_callback,
)
from tests.ingress import samples

IST = ZoneInfo("Asia/Kolkata")
PLUS_0530 = timedelta(hours=5, minutes=30)
RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
QUERY = {"command_id": "cmd-42", "account": "default", "api": "v1"}


def parse(payload: dict[str, Any], query: dict[str, str] | None = None) -> CallStatusEvent:
    return parse_callback(payload, query=query or {}, received_at=RECEIVED, tz=IST)


def ist(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=IST)


# --------------------------------------------------------------------------- v1


def test_v1_terminal_json_sample() -> None:
    payload = samples.load("v1_terminal.json")
    event = parse(payload, QUERY)
    assert event.api == "v1"
    assert event.call_sid == "492205107c5fb48f4ac25d1f77759339"
    assert event.leg_sid is None
    assert event.event_type == "terminal"
    assert event.status == "no-answer"
    assert event.exotel_status == "no-answer"
    assert event.direction == "outbound-api"
    assert event.from_ == "+91941374XXXX"
    assert event.to == "+91886799XXXX"
    assert event.caller_id == "0113083XXXX"
    assert event.started_at == ist(2019, 4, 8, 3, 17, 59)
    assert event.ended_at == ist(2019, 4, 8, 3, 18, 36)
    assert event.started_at is not None
    assert event.started_at.utcoffset() == PLUS_0530
    assert event.conversation_duration == 32
    assert event.recording_url == (
        "https://s3-ap-southeast-1.amazonaws.com/exotelrecordings/<your_sid>/"
        "492205107c5fb48f4ac25d1f77759339.mp3"
    )
    assert [(leg.index, leg.status, leg.on_call_duration) for leg in event.legs] == [
        (0, "completed", 41),
        (1, "completed", 32),
    ]
    assert event.custom_field is None
    assert (event.command_id, event.account) == ("cmd-42", "default")
    assert event.source == "callback"
    assert event.received_at == RECEIVED
    assert event.raw == payload


def test_v1_terminal_multipart_sample() -> None:
    pairs = samples.form_pairs()
    assert ("Legs[1][Status]", "") in pairs  # the doc's empty leg status
    payload = form_to_payload(pairs)
    assert payload["Legs"] == [
        {"Status": "no-answer", "OnCallDuration": "0"},
        {"Status": "", "OnCallDuration": "0"},
    ]
    event = parse(payload, {"command_id": "cmd-7"})
    assert event.call_sid == "492205107c5fb48f4ac25d1f77759339"
    assert (event.event_type, event.status, event.exotel_status) == (
        "terminal",
        "no-answer",
        "no-answer",
    )
    assert event.started_at == ist(2019, 4, 8, 3, 10, 55)
    assert event.ended_at == ist(2019, 4, 8, 3, 11, 30)
    assert event.model_dump(mode="json")["ended_at"] == "2019-04-08T03:11:30+05:30"
    assert event.recording_url is None  # "RecordingUrl:" is empty
    assert event.conversation_duration == 0
    first, second = event.legs
    assert (first.index, first.status, first.exotel_status, first.on_call_duration) == (
        0,
        "no-answer",
        "no-answer",
        0,
    )
    assert (second.index, second.status, second.exotel_status, second.on_call_duration) == (
        1,
        None,
        None,
        0,
    )
    assert event.command_id == "cmd-7"
    assert event.account is None
    assert event.raw == payload


def test_v1_custom_field_and_answered_event() -> None:
    payload = samples.load("v1_terminal.json") | {
        "EventType": "answered",
        "Status": "in-progress",
        "EndTime": None,
        "CustomField": "order-981",
    }
    event = parse(payload)
    assert (event.event_type, event.status, event.exotel_status) == (
        "answered",
        "in-progress",
        "in-progress",
    )
    assert event.ended_at is None
    assert event.custom_field == "order-981"


def test_v1_basic_callback_without_event_type_is_terminal() -> None:
    payload = {
        "CallSid": "b6cfaf7d0e4a9b1c",
        "Status": "completed",
        "RecordingUrl": "",
        "DateUpdated": "2019-04-08 03:18:35",
    }
    event = parse(payload)
    assert (event.event_type, event.status) == ("terminal", "completed")
    assert event.legs == []
    assert event.recording_url is None


def test_v1_legs_as_json_text_in_a_form_field() -> None:
    payload = {"CallSid": "abc123", "Status": "busy", "Legs": '[{"Status": "busy"}]'}
    assert [leg.status for leg in parse(payload).legs] == ["busy"]


def test_naive_times_follow_the_configured_zone() -> None:
    payload = samples.load("v1_terminal.json")
    event = parse_callback(payload, query={}, received_at=RECEIVED, tz=ZoneInfo("UTC"))
    assert event.started_at == datetime(2019, 4, 8, 3, 17, 59, tzinfo=UTC)


# --------------------------------------------------------------------------- v2


def test_v2_answered_samples() -> None:
    agent = parse(samples.load("v2_answered_agent.json"))
    both = parse(samples.load("v2_answered_customer.json"))
    for event in (agent, both):
        assert event.api == "v2"
        assert event.call_sid == "906960925ec65c4bf46b90101b98156u"
        assert event.event_type == "answered"
        assert event.status == "in-progress"
        assert event.exotel_status is None  # call_status is null while answered
        assert event.direction == "outbound"
        assert event.caller_id == "+91804568XXXX"
        assert event.started_at == ist(2021, 6, 30, 2, 43, 19)
        assert event.ended_at is None
        assert event.custom_field == "12130y124b2f142"
        assert event.from_ == "+9199531XXXXX"  # the agent is dialled first
    assert [(leg.index, leg.status, leg.phone_number) for leg in agent.legs] == [
        (0, "in-progress", "+9199531XXXXX"),
        (1, None, "+9199531XXXXX"),
    ]
    assert [leg.status for leg in both.legs] == ["in-progress", "in-progress"]
    assert both.to == "+919953XXXXX"
    # Two different callbacks of one call, same type: different ids.
    assert agent.event_id != both.event_id


def test_v2_terminal_sample() -> None:
    event = parse(samples.load("v2_terminal.json"))
    assert event.call_sid == "906960925ec65c4bf46b90101XXXXXX"
    assert (event.event_type, event.status, event.exotel_status) == (
        "terminal",
        "completed",
        "completed",
    )
    assert event.ended_at == ist(2021, 6, 30, 2, 43, 32)
    assert event.conversation_duration == 5
    assert event.recording_url == (
        "https://s3-ap-southeast-1.amazonaws.com/exotelrecordings/Exotel/"
        "906960925ec65c4bf46b901XXXXX.mp3"
    )
    assert [leg.status for leg in event.legs] == ["completed", "completed"]


def test_v2_inbound_puts_the_customer_first() -> None:
    payload = samples.load("v2_terminal.json")
    payload["call_details"]["direction"] = "inbound"
    event = parse(payload)
    assert (event.from_, event.to) == ("+919953XXXXX", "+9199531XXXX")


# --------------------------------------------------------------------------- v3


def test_v3_terminal_sample() -> None:
    event = parse(samples.load("v3_terminal.json"), {"command_id": "c-3", "api": "v3"})
    assert event.api == "v3"
    assert event.call_sid == "0ed3bd4755078e1f9f64d2de75ce16b3"
    assert (event.event_type, event.status, event.exotel_status) == (
        "terminal",
        "completed",
        "completed",
    )
    assert event.caller_id == "+912241499102"
    assert event.started_at == ist(2022, 11, 3, 0, 18, 38)
    assert event.ended_at == ist(2022, 11, 3, 0, 19, 2)
    assert event.model_dump(mode="json")["started_at"] == "2022-11-03T00:18:38+05:30"
    assert event.conversation_duration == 11
    assert event.custom_field == "bilbo_test_call"
    assert event.recording_url == (
        "https://s3-ap-south-1.amazonaws.com/exotel-mum1-recordings/Exotel/"
        "0ed3bd4755078e1f9f64d2de75ce16b3.mp3"
    )
    assert event.legs == []  # v3 gives a URL to the legs API, not the legs
    assert event.command_id == "c-3"


@pytest.mark.parametrize(
    ("exotel", "normalised"),
    [
        ("completed", "completed"),
        ("from_leg_unanswered", "no-answer"),
        ("to_leg_unanswered", "no-answer"),
        ("from_leg_cancelled", "canceled"),
        ("to_leg_no_dial", "failed"),
        ("from_leg_no_dial", "failed"),
        ("something_new", "unknown"),
        (None, "unknown"),
    ],
)
def test_v3_terminal_statuses(exotel: str | None, normalised: str) -> None:
    payload = samples.load("v3_terminal.json")
    payload["call_details"]["status"] = exotel
    event = parse(payload)
    assert (event.status, event.exotel_status) == (normalised, exotel)


def test_v3_answered_with_null_status_is_in_progress() -> None:
    payload = samples.load("v3_terminal.json")
    payload["event_details"]["event_type"] = "answered"
    payload["call_details"] |= {"state": "active", "status": None, "end_time": None}
    event = parse(payload)
    assert (event.event_type, event.status, event.exotel_status) == (
        "answered",
        "in-progress",
        None,
    )


def test_v3_flow_fields_every_recording_and_the_talk_time_are_carried() -> None:
    payload = samples.load("v3_terminal.json")
    second = "https://s3-ap-south-1.amazonaws.com/exotel-mum1-recordings/Exotel/second.mp3"
    payload["call_details"] |= {
        "app_id": "926",
        "app_name": "Support line",
        "digits": "1-23",
        "recordings": [*payload["call_details"]["recordings"], {"url": second}],
    }
    event = parse(payload)
    assert (event.app_id, event.app_name, event.digits) == ("926", "Support line", "1-23")
    assert event.recording_urls == [event.recording_url, second]
    assert event.total_talk_time == event.conversation_duration == 11


def test_v3_samples_without_flow_fields_say_null() -> None:
    event = parse(samples.load("v3_terminal.json"))
    assert (event.app_id, event.app_name, event.digits) == (None, None, None)
    assert len(event.recording_urls) == 1


def test_v2_carries_the_assigned_agent() -> None:
    event = parse(samples.load("v2_terminal.json"))
    assert event.assigned_agent is not None
    assert event.assigned_agent.user_id == "12898c52573645739e64864ad308f0a9"
    assert event.assigned_agent.user_name == "Sarthak XXXX"
    assert (event.assigned_agent.group_id, event.assigned_agent.group_name) == (None, None)
    assert event.total_talk_time == 5


def test_v2_carries_the_assigned_agents_group() -> None:
    payload = samples.load("v2_terminal.json")
    payload["call_details"]["assigned_agent_details"] |= {
        "group_id": "g-17",
        "group_name": "Tier 2",
    }
    agent = parse(payload).assigned_agent
    assert agent is not None
    assert (agent.user_id, agent.group_id, agent.group_name) == (
        "12898c52573645739e64864ad308f0a9",
        "g-17",
        "Tier 2",
    )


def test_an_agent_without_any_detail_is_no_agent() -> None:
    payload = samples.load("v2_terminal.json")
    payload["call_details"]["assigned_agent_details"] = {"contact_uri": "+9199531XXXX"}
    assert parse(payload).assigned_agent is None


def test_to_leg_unanswered_does_not_tell_busy_from_no_answer_and_keeps_exotels_word() -> None:
    payload = samples.load("v3_terminal.json")
    payload["call_details"]["status"] = "to_leg_unanswered"
    event = parse(payload)
    assert (event.status, event.exotel_status) == ("no-answer", "to_leg_unanswered")
    description = CallStatusEvent.model_fields["status"].description or ""
    assert "to_leg_unanswered" in description
    assert "busy" in description


# --------------------------------------------------------------------------- LWB


def test_lwb_monitor_leg_terminal_sample() -> None:
    payload = samples.load("lwb_monitor_terminal.json")
    event = parse(payload, {"command_id": "lwb-1", "api": "lwb"})
    assert event.api == "lwb"
    assert (event.call_sid, event.leg_sid) == ("xxxxxx", "xxxxxxx")
    assert (event.event_type, event.status, event.exotel_status) == (
        "terminal",
        "completed",
        "completed",
    )
    assert (event.origin, event.last_action, event.custom_field) == (
        "monitor",
        "whisper",
        "legscustom",
    )
    assert event.started_at == ist(2021, 2, 8, 19, 33, 59)
    assert event.ended_at == ist(2021, 2, 8, 19, 34, 32)
    [leg] = event.legs
    assert (leg.index, leg.leg_sid, leg.status, leg.on_call_duration, leg.origin) == (
        0,
        "xxxxxxx",
        "completed",
        52,
        "monitor",
    )
    assert leg.phone_number == "xxxxxxxx"
    assert event.command_id == "lwb-1"


def test_lwb_json_sample_is_the_doc_sample_with_punctuation_restored() -> None:
    def restore(key: str, value: str) -> str:
        if key in {"datecreated", "dateupdated", "starttime", "endtime"}:
            y, mo, d, h, mi, s = value.split()
            return f"{y}-{mo}-{d} {h}:{mi}:{s}"
        return value

    doc = {k: restore(k, v) for k, v in samples.lwb_pairs()}
    assert doc == samples.load("lwb_monitor_terminal.json")


def test_lwb_as_form_fields() -> None:
    event = parse(form_to_payload(samples.load("lwb_monitor_terminal.json").items()))
    assert (event.api, event.leg_sid, event.legs[0].on_call_duration) == ("lwb", "xxxxxxx", 52)


# --------------------------------------------------------------------------- identity


def test_event_id_is_stable_across_deliveries() -> None:
    payload = samples.load("v1_terminal.json")
    first = parse(payload, {"command_id": "a"})
    reordered = dict(reversed(list(samples.load("v1_terminal.json").items())))
    again = parse_callback(
        reordered,
        query={"command_id": "a", "account": "x"},
        received_at=RECEIVED + timedelta(seconds=15),
        tz=IST,
    )
    assert first.event_id == again.event_id
    from_bytes = parse(json.loads(samples.raw_bytes("v1_terminal.json")))
    assert from_bytes.event_id == first.event_id


def test_event_id_differs_for_different_callbacks() -> None:
    payload = samples.load("v1_terminal.json")
    ids = {
        parse(payload).event_id,
        parse(payload | {"EventType": "answered"}).event_id,
        parse(payload | {"Status": "completed"}).event_id,
        parse(payload | {"CallSid": "another"}).event_id,
        parse(samples.load("v3_terminal.json")).event_id,
    }
    assert len(ids) == 5


def test_event_serialises_by_alias_and_round_trips() -> None:
    event = parse(samples.load("v1_terminal.json"), QUERY)
    data = json.loads(event.model_dump_json(by_alias=True))
    assert data["from"] == "+91941374XXXX"
    assert "from_" not in data
    assert CallStatusEvent.model_validate(data) == event


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("in-progress", "in-progress"),
        ("in progress", "in-progress"),
        ("completed", "completed"),
        ("busy", "busy"),
        ("no-answer", "no-answer"),
        ("failed", "failed"),
        ("canceled", "canceled"),
        ("cancelled", "canceled"),
        ("queued", "queued"),
        ("ringing", "ringing"),
        ("COMPLETED", "completed"),
        ("from_leg_unanswered", "no-answer"),
        ("whatever", "unknown"),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_normalise_status(raw: str | None, expected: str | None) -> None:
    assert normalise_status(raw) == expected


def test_unknown_v1_status_is_kept_raw() -> None:
    event = parse(samples.load("v1_terminal.json") | {"Status": "on-hold"})
    assert (event.status, event.exotel_status) == ("unknown", "on-hold")


# --------------------------------------------------------------------------- unreadable


V1 = samples.load("v1_terminal.json")


@pytest.mark.parametrize(
    ("payload", "query", "reason"),
    [
        ({}, {}, "no call sid"),
        ({"Status": "completed"}, {}, "no call sid"),
        (V1 | {"CallSid": ""}, {}, "missing"),
        (V1 | {"CallSid": 123}, {}, "printable"),
        (V1 | {"CallSid": "has blanks"}, {}, "printable"),
        (V1 | {"CallSid": "x" * 200}, {}, "printable"),
        (V1 | {"EventType": "ringing"}, {}, "event type"),
        (V1 | {"StartTime": "yesterday"}, {}, "date-time"),
        (V1 | {"ConversationDuration": -1}, {}, "whole number"),
        (V1 | {"ConversationDuration": "3.5"}, {}, "whole number"),
        (V1 | {"ConversationDuration": True}, {}, "whole number"),
        (V1 | {"Legs": {"a": {"Status": "busy"}}}, {}, "Legs"),
        (V1 | {"Legs": ["busy"]}, {}, "Legs[0]"),
        (V1 | {"Legs": [{}] * 65}, {}, "legs"),
        (V1 | {"Status": ["completed"]}, {}, "must be text"),
        (V1 | {"CustomField": "x" * (MAX_VALUE_CHARS + 1)}, {}, "longer than"),
        (V1 | {"Deep": [[[[[[[[[["x"]]]]]]]]]]}, {}, "nested"),
        (V1 | {"Odd": float("nan")}, {}, "finite"),
        (V1 | {"Odd": b"bytes"}, {}, "not JSON"),
        (V1 | {"Odd": "\ud800"}, {}, "Unicode"),
        (V1, {"command_id": "c" * 129}, "command_id"),
        (V1, {"api": "v9"}, "api"),
        ({"call_details": "sid"}, {}, "object"),
        ({"event_details": {"event_type": "terminal"}}, {}, "call_details"),
        ({"call_details": {"sid": "abc", "recordings": "x"}}, {}, "recordings"),
        ({"callsid": "abc", "oncallduration": "many"}, {}, "whole number"),
    ],
)
def test_unreadable_payloads(payload: dict[str, Any], query: dict[str, str], reason: str) -> None:
    with pytest.raises(UnreadableCallback) as caught:
        parse(payload, query)
    assert reason.lower() in caught.value.reason.lower()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'"text"', "not an object"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_decode_json_rejects(body: bytes, reason: str) -> None:
    with pytest.raises(UnreadableCallback, match=reason):
        decode_json(body)


# --------------------------------------------------------------------------- forms


def test_form_to_payload_nesting() -> None:
    payload = form_to_payload(
        [
            ("event_details[event_type]", "terminal"),
            ("call_details[sid]", "abc"),
            ("call_details[recordings][0][url]", "https://r/1.mp3"),
            ("Tags[]", "a"),
            ("Tags[]", "b"),
            ("Legs[1][Status]", "busy"),
            ("Legs[0][Status]", "completed"),
            ("Plain", "1"),
            ("Plain", "2"),
            ("odd[key", "kept"),
        ]
    )
    assert payload == {
        "event_details": {"event_type": "terminal"},
        "call_details": {"sid": "abc", "recordings": [{"url": "https://r/1.mp3"}]},
        "Tags": ["a", "b"],
        "Legs": [{"Status": "completed"}, {"Status": "busy"}],
        "Plain": "2",
        "odd[key": "kept",
    }
    assert parse(payload).recording_url == "https://r/1.mp3"


@pytest.mark.parametrize(
    "pairs",
    [
        [("Legs[0]", "x"), ("Legs[0][Status]", "busy")],
        [("Legs[0][Status]", "busy"), ("Legs[0]", "x")],
        [("Legs[99999999][Status]", "busy")],
        [("a" + "[b]" * 20, "deep")],
        [("k" * 300, "long")],
        [(f"f{i}", "v") for i in range(1001)],
    ],
)
def test_form_to_payload_rejects(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(UnreadableCallback):
        form_to_payload(pairs)
