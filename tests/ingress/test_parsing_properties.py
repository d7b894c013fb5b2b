"""Whatever arrives, parsing either yields a valid fact or raises UnreadableCallback."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.status import CallStatusEvent
from services.exotel.fields import SPELLINGS, fold, spell
from services.ingress.parsing import (
    MAX_DEPTH,
    UnreadableCallback,
    _form_path,
    _listify,
    _put,
    decode_json,
    form_to_payload,
    parse_callback,
    uuid5_text,
)
from services.sandbox.payloads import flatten
from tests.ingress import samples

IST = ZoneInfo("Asia/Kolkata")
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)

EXOTEL_KEYS = [
    "CallSid",
    "EventType",
    "Status",
    "DateCreated",
    "DateUpdated",
    "StartTime",
    "EndTime",
    "ConversationDuration",
    "Legs",
    "CustomField",
    "RecordingUrl",
    "PhoneNumberSid",
    "From",
    "To",
    "Direction",
    "OnCallDuration",
    "event_details",
    "call_details",
    "event_type",
    "call_sid",
    "sid",
    "call_status",
    "status",
    "start_time",
    "end_time",
    "total_talk_time",
    "recordings",
    "url",
    "assigned_agent_details",
    "customer_details",
    "contact_uri",
    "callsid",
    "legsid",
    "eventtype",
    "oncallduration",
    "starttime",
    "endtime",
    "origin",
]
STATUS_WORDS = [
    "completed",
    "no-answer",
    "busy",
    "answered",
    "terminal",
    "",
    "2019-04-08 03:17:59",
    "2022-11-03 00:18:32+05:30",
    "0",
    "-1",
    "41",
    "abc123",
    "from_leg_unanswered",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(STATUS_WORDS),
)
keys = st.one_of(st.sampled_from(EXOTEL_KEYS), st.text(max_size=12))
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=40,
)
weird = st.one_of(
    json_like, st.binary(max_size=8), st.tuples(st.integers()), st.sets(st.integers())
)
payloads = st.one_of(
    st.dictionaries(keys, json_like, max_size=10),
    st.dictionaries(st.one_of(keys, st.integers()), weird, max_size=6),
)
queries = st.dictionaries(
    st.sampled_from(["command_id", "account", "api", "other"]),
    st.one_of(st.text(max_size=140), st.sampled_from(["v1", "v2", "v3", "lwb"])),
    max_size=4,
)
form_keys = st.one_of(
    st.sampled_from(
        [
            "CallSid",
            "Status",
            "Legs[0][Status]",
            "Legs[1][OnCallDuration]",
            "Legs[]",
            "Legs[0]",
            "call_details[sid]",
            "event_details[event_type]",
            "callsid",
            "a[b][c]",
            "a[",
            "[x]",
            "Legs[7][Status]",
        ]
    ),
    st.text(max_size=20),
)

RELAXED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(payload: Any, query: dict[str, str] | None = None) -> None:
    try:
        event = parse_callback(payload, query=query or {}, received_at=RECEIVED, tz=IST)
    except UnreadableCallback as exc:
        reason = exc.reason
        assert isinstance(reason, str)
        assert reason
        return
    # A fact always serialises and validates back.
    assert CallStatusEvent.model_validate_json(event.model_dump_json(by_alias=True)) == event
    again = parse_callback(payload, query=query or {}, received_at=RECEIVED, tz=IST)
    assert again.event_id == event.event_id


@RELAXED
@given(payloads, queries)
def test_random_dicts(payload: dict[Any, Any], query: dict[str, str]) -> None:
    check(payload, query)


@settings(RELAXED, max_examples=100)
@given(st.dictionaries(keys, json_like, max_size=8), st.sampled_from(["v1", "v2", "v3", "lwb"]))
def test_random_fields_on_top_of_real_samples(extra: dict[str, Any], which: str) -> None:
    base = {
        "v1": "v1_terminal.json",
        "v2": "v2_terminal.json",
        "v3": "v3_terminal.json",
        "lwb": "lwb_monitor_terminal.json",
    }[which]
    payload = samples.load(base)
    payload.update(extra)
    details = payload.get("call_details")
    if isinstance(details, dict):
        details.update(extra)
    check(payload)


@RELAXED
@given(
    st.lists(
        st.tuples(form_keys, st.one_of(st.text(max_size=20), st.sampled_from(STATUS_WORDS))),
        max_size=25,
    )
)
def test_random_form_pairs(pairs: list[tuple[str, str]]) -> None:
    try:
        payload = form_to_payload(pairs)
    except UnreadableCallback:
        return
    json.dumps(payload)  # always plain JSON
    check(payload)


@RELAXED
@given(st.binary(max_size=300))
def test_random_bytes(body: bytes) -> None:
    try:
        payload = decode_json(body)
    except UnreadableCallback:
        return
    check(payload)


@RELAXED
@given(st.text(max_size=200))
def test_random_json_like_text(text: str) -> None:
    try:
        payload = decode_json(("{" + text).encode("utf-8", errors="surrogatepass"))
    except UnreadableCallback:
        return
    check(payload)


# --------------------------------------------------------------------------- spelling

SAMPLES = {
    "v1": "v1_terminal.json",
    "v2": "v2_terminal.json",
    "v3": "v3_terminal.json",
    "lwb": "lwb_monitor_terminal.json",
}
TYPED = ("call_sid", "leg_sid", "event_type", "status", "api", "from_", "to", "legs")
#: each key on its own: as documented, or in one of the three spellings
key_spellings = st.sampled_from([None, *SPELLINGS])


def mixed(value: Any, draw: Any) -> Any:
    """``value`` with every key respelled independently (a spelling per key)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            spelling = draw(key_spellings)
            out[key if spelling is None else spell(key, spelling)] = mixed(item, draw)
        return out
    if isinstance(value, list):
        return [mixed(item, draw) for item in value]
    return value


def parse(payload: Any, query: dict[str, str] | None = None) -> CallStatusEvent:
    return parse_callback(payload, query=query or {}, received_at=RECEIVED, tz=IST)


@settings(RELAXED, max_examples=150)
@given(st.sampled_from(sorted(SAMPLES)), st.booleans(), st.data())
def test_a_spelling_per_key_reads_like_the_documented_sample(
    which: str, as_form: bool, data: st.DataObject
) -> None:
    documented = samples.load(SAMPLES[which])
    spelled = mixed(documented, data.draw)
    if as_form:
        documented, spelled = (form_to_payload(flatten(p)) for p in (documented, spelled))
    expected, event = parse(documented), parse(spelled)
    assert [getattr(event, f) for f in TYPED] == [getattr(expected, f) for f in TYPED]


@settings(RELAXED, max_examples=150)
@given(
    st.dictionaries(
        st.sampled_from(["Status", "EventType", "Direction", "From", "To", "Legs", "x"]),
        json_like,
        max_size=5,
    ),
    st.data(),
)
def test_a_monitor_leg_event_is_never_a_call_terminal(
    extra: dict[str, Any], data: st.DataObject
) -> None:
    payload = mixed(samples.load("lwb_monitor_terminal.json"), data.draw)
    folded = {fold(k) for k in payload}
    payload |= {k: v for k, v in extra.items() if fold(k) not in folded}
    try:
        event = parse(payload)
    except UnreadableCallback:
        return
    assert event.api == "lwb"
    assert event.leg_sid == "xxxxxxx"


@settings(RELAXED, max_examples=150)
@given(st.dictionaries(keys, json_like, max_size=6))
def test_whatever_reaches_a_monitor_legs_url_is_never_the_calls_terminal(
    payload: dict[str, Any],
) -> None:
    try:
        event = parse(payload | {"callsid": "CA1"}, {"api": "lwb"})
    except UnreadableCallback:
        return
    assert event.api in ("lwb", "v2", "v3"), "only a CCM envelope is read as a call's own"


@settings(RELAXED, max_examples=150)
@given(
    st.dictionaries(st.sampled_from(["Status", "EventType", "x", "Legs"]), json_like, max_size=4)
)
def test_a_passthru_notification_is_never_a_terminal(extra: dict[str, Any]) -> None:
    payload = samples.query_payload("passthru_after_connect.query.txt") | extra
    try:
        event = parse(payload)
    except UnreadableCallback:
        return
    assert (event.api, event.event_type) == ("passthru", "flow")


def _every_key_nested(pairs: list[tuple[str, str]]) -> dict[str, Any] | str:
    """form_to_payload as it was before plain names skipped the path (every key split into
    its segments, then lists made): the result, or the error's reason."""
    root: dict[Any, Any] = {}
    try:
        for key, value in pairs:
            path = _form_path(key)
            if len(path) > MAX_DEPTH:
                raise UnreadableCallback("nested too deeply")
            _put(root, key, path, value)
    except UnreadableCallback as exc:
        return exc.reason
    listed: dict[str, Any] = _listify(root)
    return listed


FORM_KEYS = st.one_of(
    st.sampled_from(["CallSid", "Legs", "Legs[0]", "Legs[0][Status]", "Legs[1][Status]", "a[]"]),
    st.text(alphabet="ab[]0", max_size=7),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(FORM_KEYS, st.text(alphabet="xy", max_size=2)), max_size=8))
def test_plain_form_names_read_as_through_the_nested_path(pairs: list[tuple[str, str]]) -> None:
    expected = _every_key_nested(pairs)
    try:
        payload: dict[str, Any] | str = form_to_payload(pairs)
    except UnreadableCallback as exc:
        payload = exc.reason
    if isinstance(expected, str):
        assert isinstance(payload, str), (payload, expected)
    else:
        assert payload == expected
        assert list(payload) == list(expected), "the same key order"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.text())
def test_uuid5_text_is_the_uuid_modules_uuid5(namespace: bytes, name: str) -> None:
    try:
        expected = str(uuid.uuid5(uuid.UUID(bytes=namespace), name))
    except UnicodeEncodeError:  # a lone surrogate: both refuse it
        with pytest.raises(UnicodeEncodeError):
            uuid5_text(namespace, name)
        return
    assert uuid5_text(namespace, name) == expected
