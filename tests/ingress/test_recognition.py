"""Callback shapes recognised by their content, whatever the key spelling and encoding.

Issue 13: a monitor leg's terminal callback spelled as Exotel spells its leg objects
elsewhere (``LegSid``, ``CallSid``, ``Status``, ``Origin``, ...) was published as the call's
own terminal. Every shape is read here in lowercase, PascalCase and snake_case, as JSON,
as form fields (multipart or urlencoded: the same decoder) and as a GET query.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts.status import CallStatusEvent
from services.exotel.fields import SPELLINGS, Spelling, fold, spell, words
from services.ingress.parsing import (
    UnreadableCallback,
    detect_api,
    form_to_payload,
    parse_callback,
)
from services.sandbox.payloads import flatten, respell
from tests.ingress import samples

IST = ZoneInfo("Asia/Kolkata")
RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

#: how a payload reaches the parser: a JSON body, or form fields / a GET query (flattened
#: to ``Legs[0][Status]`` keys and decoded again, every value a string)
Encoding = Callable[[dict[str, Any]], dict[str, Any]]
ENCODINGS: dict[str, Encoding] = {
    "json": lambda payload: payload,
    "form or query": lambda payload: form_to_payload(flatten(payload)),
}
SHAPES = {
    "v1_terminal.json": "v1",
    "v2_terminal.json": "v2",
    "v3_terminal.json": "v3",
    "lwb_monitor_terminal.json": "lwb",
}
#: what must not depend on spelling or encoding
TYPED = (
    "call_sid",
    "leg_sid",
    "event_type",
    "status",
    "exotel_status",
    "direction",
    "from_",
    "to",
    "caller_id",
    "started_at",
    "ended_at",
    "conversation_duration",
    "recording_url",
    "recording_urls",
    "legs",
    "origin",
    "last_action",
    "custom_field",
    "api",
    "digits",
    "app_id",
    "app_name",
    "total_talk_time",
    "assigned_agent",
)


def parse(payload: dict[str, Any], query: dict[str, str] | None = None) -> CallStatusEvent:
    return parse_callback(payload, query=query or {}, received_at=RECEIVED, tz=IST)


def typed(event: CallStatusEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in TYPED}


# --------------------------------------------------------------------------- spelling


def test_every_spelling_of_a_name_folds_to_one_key() -> None:
    assert {fold(n) for n in ("CallSid", "callsid", "call_sid", "Call-Sid", "CALLSID")} == {
        "callsid"
    }
    assert fold("CallFrom") == fold("Callfrom") == fold("call_from")


def test_names_are_respelled_through_their_words() -> None:
    assert words("OnCallDuration") == ["on", "call", "duration"]
    assert words("oncallduration") == ["on", "call", "duration"], "the LWB capture's words"
    assert [spell("legsid", s) for s in SPELLINGS] == ["LegSid", "legsid", "leg_sid"]
    assert [spell("call_details", s) for s in SPELLINGS] == [
        "CallDetails",
        "calldetails",
        "call_details",
    ]
    assert spell("PhoneNumberSid", "snake_case") == "phone_number_sid"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("sample", SHAPES)
def test_every_shape_reads_the_same_in_every_spelling_and_encoding(
    sample: str, spelling: Spelling, encoding: str
) -> None:
    documented = parse(samples.load(sample))
    event = parse(ENCODINGS[encoding](respell(samples.load(sample), spelling)))
    assert event.api == SHAPES[sample]
    assert typed(event) == typed(parse(ENCODINGS[encoding](samples.load(sample)))), (
        f"{sample} in {spelling} as {encoding}"
    )
    assert (event.call_sid, event.status, event.event_type) == (
        documented.call_sid,
        documented.status,
        documented.event_type,
    )


# --------------------------------------------------------------------------- leg events


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_monitor_legs_pascal_case_terminal_is_a_leg_event_not_the_calls_end(
    encoding: str,
) -> None:
    payload = ENCODINGS[encoding](samples.load("lwb_monitor_terminal_pascal.json"))
    event = parse(payload)
    assert event.api == "lwb"
    assert event.leg_sid == "xxxxxxx"
    assert event.call_sid == "xxxxxx"
    assert event.origin == "monitor"
    assert event.last_action == "whisper"
    assert event.status == "completed"
    assert event.legs[0].on_call_duration == 52
    assert event.custom_field == "legscustom"
    assert event.raw == payload, "raw keeps Exotel's spelling"


def test_a_leg_callback_without_a_leg_sid_is_still_a_leg_event() -> None:
    payload = samples.load("lwb_monitor_terminal_pascal.json")
    del payload["LegSid"]
    event = parse(payload)
    assert (event.api, event.leg_sid, event.origin) == ("lwb", None, "monitor")


def test_a_callback_to_a_monitor_legs_url_is_a_leg_event_whatever_it_carries() -> None:
    # The executor signs api=lwb on every monitor leg's callback URL.
    bare = {"CallSid": "CA1", "Status": "completed", "EventType": "terminal"}
    assert parse(bare).api == "v1"
    event = parse(bare, {"command_id": "lwb-1", "api": "lwb"})
    assert (event.api, event.event_type, event.command_id) == ("lwb", "terminal", "lwb-1")


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_detection_by_content(spelling: Spelling) -> None:
    for sample, api in SHAPES.items():
        assert detect_api(respell(samples.load(sample), spelling)) == api
    passthru = respell(samples.query_payload("passthru_before_connect.query.txt"), spelling)
    assert detect_api(passthru) == "passthru"


def test_a_passthru_sent_to_the_callback_endpoint_is_a_flow_event_not_a_terminal() -> None:
    event = parse(samples.query_payload("passthru_after_connect.query.txt"), {"account": "sales"})
    assert (event.api, event.event_type) == ("passthru", "flow")
    assert event.account == "sales"


def test_keys_that_differ_only_in_spelling_must_agree() -> None:
    same = {"CallSid": "CA1", "callsid": "CA1", "Status": "completed"}
    assert parse(same).call_sid == "CA1"
    with pytest.raises(UnreadableCallback, match="differ only in spelling"):
        parse({"CallSid": "CA1", "call_sid": "CA2", "Status": "completed"})


def test_the_event_id_follows_the_payload_as_received() -> None:
    documented = samples.load("lwb_monitor_terminal.json")
    again = parse(dict(reversed(list(documented.items()))))
    assert parse(documented).event_id == again.event_id
