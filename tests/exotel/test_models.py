"""Exotel's own sample answers parse into the typed models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.exotel import (
    ActiveLeg,
    CallDetails,
    CompletedCallLeg,
    Leg,
    LegDetail,
    PlacedCall,
    V3CallLegs,
)
from services.exotel._payload import PayloadError, load_payload
from services.exotel.models import bulk_page, parse_datetime
from tests.exotel.conftest import sample

IST = ZoneInfo("Asia/Kolkata")
PLUS_0530 = timezone(timedelta(hours=5, minutes=30))


def load(name: str) -> object:
    return load_payload(sample(name))


# ---------------------------------------------------------------- placed calls


def test_the_v1_connect_json_sample_gives_the_call_sid_and_status() -> None:
    placed = PlacedCall.from_v1(load("v1_connect_response.json"))
    assert placed.api == "v1"
    assert placed.call_sid == "c5797dcbaaeed7678c4062a4a3ed2f8a"
    assert placed.status == "in-progress"
    assert placed.raw["Call"]["Direction"] == "outbound-api"


def test_the_v1_connect_xml_sample_gives_the_same_fields() -> None:
    placed = PlacedCall.from_v1(load("v1_connect_response.xml"))
    assert placed.call_sid == "06caf2045009d50fbb1da5b5926d2e2f"
    assert placed.status == "in-progress"


def test_the_v1_connect_to_flow_samples_parse() -> None:
    assert PlacedCall.from_v1(load("v1_connect_flow_response.json")).call_sid == (
        "80bfbec2d78bbbf10fb851f4fa165211"
    )
    assert PlacedCall.from_v1(load("v1_connect_flow_response.xml")).call_sid == (
        "db05188d0f6cf980cdcef8992c2b8cd4"
    )


def test_the_v2_create_call_sample_gives_sid_and_state() -> None:
    placed = PlacedCall.from_ccm("v2", load("v2_create_call_response.json"))
    assert placed.api == "v2"
    assert placed.call_sid == "9133c5d2ad930f4c7ca43645e535157d"
    assert placed.state == "active"
    assert placed.status is None


def test_the_v3_create_call_sample_gives_sid_and_state() -> None:
    placed = PlacedCall.from_ccm("v3", load("v3_create_call_response.json"))
    assert placed.api == "v3"
    assert placed.call_sid == "3f3fedf8f0928550a60bfa6302dc16b2"
    assert placed.state == "active"
    assert placed.raw["request_id"] == "1e2acb77c0f84db4821e765510fdecff"


def test_an_answer_without_a_call_sid_is_refused() -> None:
    with pytest.raises(PayloadError, match=r"Call\.Sid"):
        PlacedCall.from_v1({"Call": {"Status": "queued"}})
    with pytest.raises(PayloadError, match="call_details"):
        PlacedCall.from_ccm("v3", {"response": {"status": "success"}})


# ---------------------------------------------------------------- v1 call details


def test_v1_call_details_read_naive_times_in_the_accounts_zone() -> None:
    details = CallDetails.from_v1_response(load("v1_call_details.json"), IST)
    assert details.call_sid == "b6cfaf5f5cef3ca0fc937749ef960e25"
    assert details.status == "completed"
    assert details.is_terminal
    assert details.direction == "outbound-api"
    assert details.from_number == "0XXXXX30240"
    assert details.to_number == "0XXXXX20000"
    assert details.caller_id == "0XXXXXX4890"
    assert details.start_time == datetime(2016, 11, 29, 15, 59, 10, tzinfo=IST)
    assert details.start_time.utcoffset() == timedelta(hours=5, minutes=30)
    assert details.end_time == datetime(2016, 11, 29, 15, 59, 27, tzinfo=IST)
    assert details.duration == 17
    assert details.price == "1.500"
    assert details.recording_url is not None
    assert details.recording_url.endswith("b6cfaf5f5cef3ca0fc937749ef960e25.mp3")
    assert details.legs == []
    assert details.conversation_duration is None


def test_the_corrected_details_sample_gives_leg_statuses_and_durations() -> None:
    details = CallDetails.from_v1_response(load("v1_call_details_details_corrected.json"), IST)
    assert details.call_sid == "b6cfaf5f5cef3ca0fc937749ef96d245"
    assert details.conversation_duration == 8
    assert details.legs == [
        LegDetail(index=0, status="completed", on_call_duration=21),
        LegDetail(index=1, status="completed", on_call_duration=8),
    ]


def test_the_details_sample_as_published_is_refused_with_a_clear_error() -> None:
    with pytest.raises(PayloadError, match=r"not valid JSON: Expecting ',' delimiter"):
        load_payload(sample("v1_call_details_details.json"))


def test_the_details_xml_sample_gives_the_same_legs_as_the_json() -> None:
    from_xml = CallDetails.from_v1_response(load("v1_call_details_details.xml"), IST)
    from_json = CallDetails.from_v1_response(load("v1_call_details_details_corrected.json"), IST)
    assert from_xml.legs == from_json.legs
    assert from_xml.conversation_duration == from_json.conversation_duration == 8
    assert from_xml.start_time == from_json.start_time


def test_the_call_details_xml_sample_with_doc_placeholders_is_refused() -> None:
    with pytest.raises(PayloadError, match="not well-formed XML"):
        load_payload(sample("v1_call_details.xml"))


def test_a_v1_call_still_ringing_is_not_terminal() -> None:
    details = CallDetails.from_v1({"Sid": "abc", "Status": "ringing"}, IST)
    assert not details.is_terminal


# ---------------------------------------------------------------- bulk call details


def test_a_bulk_page_gives_its_calls_and_the_next_page_uri() -> None:
    calls, next_uri = bulk_page(load("v1_bulk_call_details.json"), IST)
    assert [c.call_sid for c in calls] == ["b6cfaf5f5cef3ca0fc937749ef960e25"]
    assert next_uri is not None
    assert next_uri.startswith("/v1/Accounts/<your_sid>/Calls.json?")
    assert "After=" in next_uri


def test_a_bulk_page_with_details_carries_leg_statuses() -> None:
    calls, _ = bulk_page(load("v1_bulk_call_details_details.json"), IST)
    (call,) = calls
    assert call.conversation_duration == 33
    assert call.legs == [
        LegDetail(index=0, status="completed", on_call_duration=43),
        LegDetail(index=1, status="no-answer", on_call_duration=33),
    ]


def test_a_bulk_xml_page_parses_too() -> None:
    calls, next_uri = bulk_page(load("v1_bulk_call_details_details.xml"), IST)
    assert [c.call_sid for c in calls] == ["b6cfaf5f5cef3ca0fc937749ef96d245"]
    assert calls[0].legs[1].on_call_duration == 8
    assert next_uri is not None
    assert "&After=" in next_uri


# ---------------------------------------------------------------- v2 / v3 call details


def test_v2_terminal_details_map_agent_and_customer_onto_from_and_to() -> None:
    details = CallDetails.from_ccm("v2", load("v2_call_details_terminal.json"), IST)
    assert details.api == "v2"
    assert details.call_sid == "72827ead13a355d334338f53af71157s"
    assert details.state == "terminal"
    assert details.status == "completed"
    assert details.is_terminal
    assert details.from_number == "+9199531XXXXX"
    assert details.to_number == "+9199531XXXXX"
    assert details.caller_id == "+91804568XXXX"
    assert details.conversation_duration == 7
    assert details.duration is None
    assert details.custom_field == "12130y124b2f142"
    assert details.start_time == datetime(2021, 7, 28, 3, 7, 18, tzinfo=PLUS_0530)
    assert details.recording_url is not None
    assert details.recording_url.endswith(".mp3")
    assert [leg.status for leg in details.legs] == ["completed", "completed"]


def test_v3_terminal_details_give_state_status_talk_time_and_recording() -> None:
    details = CallDetails.from_ccm("v3", load("v3_call_details_terminal.json"), IST)
    assert details.api == "v3"
    assert details.call_sid == "cabfb1dfa8c5e1c7f2c458423b7716b3"
    assert details.state == "terminal"
    assert details.status == "completed"
    assert details.is_terminal
    assert details.caller_id == "+911414941199"
    assert details.conversation_duration == 59
    assert details.end_time == datetime(2022, 11, 3, 22, 56, 4, tzinfo=PLUS_0530)
    assert details.recording_url == (
        "https://s3-ap-south-1.amazonaws.com/exotel-mum1-recordings/Exotel/"
        "cabfb1dfa8c5e1c7f2c458423b7716b3.mp3"
    )


def test_v3_active_details_turn_the_epoch_placeholder_end_time_into_none() -> None:
    details = CallDetails.from_ccm("v3", load("v3_call_details_active.json"), IST)
    assert details.state == "active"
    assert details.status is None
    assert not details.is_terminal
    assert details.end_time is None
    assert details.start_time == datetime(2022, 11, 3, 22, 54, 57, tzinfo=PLUS_0530)


# ---------------------------------------------------------------- legs


def test_active_legs_include_the_monitor_leg_with_its_enduser_number() -> None:
    legs = ActiveLeg.list_from(load("activelegs.json"), IST)
    assert [leg.origin for leg in legs] == ["outbound", "outbound-dial", "monitor"]
    monitor = legs[2]
    assert monitor.phone_number == "xxxx"
    assert monitor.last_action == "barge"
    assert monitor.status == "in-progress"
    assert monitor.date_created == datetime(2020, 12, 22, 17, 57, 40, tzinfo=IST)
    assert legs[0].last_action is None


def test_active_legs_with_camel_case_keys_parse_the_same() -> None:
    payload = {
        "Legs": [
            {
                "Sid": "leg1",
                "CallSid": "call1",
                "PhoneNumber": "+919800000001",
                "Status": "in-progress",
                "Origin": "outbound",
                "LastAction": "",
                "DateCreated": "2020-12-22 17:31:06",
            }
        ]
    }
    (leg,) = ActiveLeg.list_from(payload, IST)
    assert (leg.sid, leg.call_sid, leg.phone_number, leg.origin) == (
        "leg1",
        "call1",
        "+919800000001",
        "outbound",
    )


def test_active_legs_in_xml_with_one_or_many_legs_parse() -> None:
    many = load_payload(
        b"<TwilioResponse><Legs><Leg><Sid>a</Sid></Leg><Leg><Sid>b</Sid></Leg></Legs>"
        b"</TwilioResponse>"
    )
    one = load_payload(b"<TwilioResponse><Legs><Leg><Sid>a</Sid></Leg></Legs></TwilioResponse>")
    assert [leg.sid for leg in ActiveLeg.list_from(many, IST)] == ["a", "b"]
    assert [leg.sid for leg in ActiveLeg.list_from(one, IST)] == ["a"]


def test_no_active_legs_is_an_empty_list() -> None:
    assert ActiveLeg.list_from({"legs": []}, IST) == []


def test_the_monitor_leg_xml_sample_parses_and_tolerates_its_garbled_dates() -> None:
    leg = Leg.from_response(load("monitor_leg.xml"), IST)
    assert leg.sid == "xxxxxxxxxxxxxxxxx"
    assert leg.origin == "monitor"
    assert leg.last_action == "barge"
    assert leg.date_created == datetime(2020, 12, 22, 17, 57, 40, tzinfo=IST)
    assert leg.date_updated is None  # "2020-12-2217:57:40" in the doc
    assert leg.start_time is None


def test_the_monitor_leg_upgrade_sample_parses() -> None:
    leg = Leg.from_response(load("monitor_leg_upgrade.xml"), IST)
    assert (leg.sid, leg.last_action) == ("xxxxxx", "barge")
    assert leg.date_updated == datetime(2020, 12, 24, 10, 56, 53, tzinfo=IST)


@pytest.mark.parametrize("name", ["hangup_leg.json", "hangup_leg.xml"])
def test_the_hangup_samples_parse_as_a_leg(name: str) -> None:
    leg = Leg.from_response(load(name), IST)
    assert leg.last_action == "hangup"
    assert leg.origin == "outbound"
    assert leg.start_time == datetime(2022, 8, 12, 12, 14, 56, tzinfo=IST)
    assert leg.exophone is not None


def test_a_leg_wrapped_as_capitalised_leg_json_parses() -> None:
    leg = Leg.from_response({"Leg": {"Sid": "L1", "Status": "in-progress"}}, IST)
    assert (leg.sid, leg.status) == ("L1", "in-progress")


def test_a_leg_answer_without_a_leg_is_refused() -> None:
    with pytest.raises(PayloadError, match="Leg"):
        Leg.from_response({"something": "else"}, IST)


def test_the_completed_call_legs_sample_gives_every_participant() -> None:
    legs = CompletedCallLeg.list_from(load("completed_call_legs.json"), IST)
    assert [leg.origin for leg in legs] == ["outbound", "outbound-dial", "outbound-dial"]
    assert [leg.on_call_duration for leg in legs] == [25, 5, 4]
    assert legs[2].end_time == datetime(2021, 6, 24, 11, 13, 8, tzinfo=IST)
    assert legs[2].exophone == "XXXXXXXXXX"
    assert legs[0].end_time is None


def test_the_v3_call_legs_sample_gives_from_and_to_legs() -> None:
    legs = V3CallLegs.from_response(load("v3_call_legs.json"), IST)
    assert legs.call_sid == "f1ca1057692d586b23b4e7ffcc3216mk"
    assert legs.account_sid == "exotel"
    assert [leg.name for leg in legs.from_legs] == ["Aditya Sharma", None]
    assert [leg.status for leg in legs.to_legs] == ["no-answer", "completed"]
    assert legs.to_legs[0].group_id == "123456"
    assert legs.to_legs[0].contact_uri == "sip:vikassffbbfc17"
    assert legs.to_legs[1].group_id is None
    assert legs.from_legs[0].date_created == datetime(2020, 9, 15, 11, 1, 20, tzinfo=PLUS_0530)


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2017-03-03 10:48:33", datetime(2017, 3, 3, 10, 48, 33, tzinfo=IST)),
        ("2022-11-02 23:49:51+05:30", datetime(2022, 11, 2, 23, 49, 51, tzinfo=PLUS_0530)),
        ("2021-06-30T02:43:13+05:30", datetime(2021, 6, 30, 2, 43, 13, tzinfo=PLUS_0530)),
        ("1970-01-01 05:30:00+05:30", None),
        ("0000-00-00 00:00:00", None),
        ("", None),
        (None, None),
        ("garbage", None),
    ],
)
def test_exotel_time_stamps_become_aware_datetimes_or_none(
    value: str | None, expected: datetime | None
) -> None:
    parsed = parse_datetime(value, IST)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None


def test_naive_times_follow_the_configured_zone() -> None:
    parsed = parse_datetime("2017-03-03 10:48:33", UTC)
    assert parsed == datetime(2017, 3, 3, 10, 48, 33, tzinfo=UTC)


def test_unreadable_numbers_become_none_rather_than_failing_the_answer() -> None:
    details = CallDetails.from_v1({"Sid": "abc", "Duration": "n/a", "Details": "x"}, IST)
    assert details.duration is None
