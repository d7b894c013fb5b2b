"""Whatever bytes arrive on a command topic, decode_command gives a command, an
InvalidCommand (a ``rejected`` result) or raises UnreadableCommand (a DLQ entry): never
anything else, so a message can never crash the consumer or stall its partition."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from contracts.catalog import BY_TYPE
from contracts.commands import CallConnect, LegHangup, LwbAction
from contracts.decoding import (
    MAX_COMMAND_BYTES,
    InvalidCommand,
    UnreadableCommand,
    decode_command,
)

TOPICS = sorted(BY_TYPE)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID: dict[str, dict[str, Any]] = {
    "call.connect": {
        "command_id": "c-1",
        "from": "+919876543210",
        "to": "+919812345678",
        "caller_id": "08047112345",
    },
    "lwb.action": {
        "command_id": "c-2",
        "call_sid": "a1b2c3",
        "action": "listen",
        "supervisor": "+919800000000",
    },
    "leg.hangup": {"command_id": "c-3", "call_sid": "a1b2c3", "leg": "customer"},
}

# Adversarial scalars: control characters, surrogates' escapes, huge and odd numbers.
ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\u202e+91",
            "\ud800",
            "+" + "9" * 400,
            "x" * 5000,
            "0x10",
            "NaN",
            "../../etc/passwd",
            "<Response/>",
            "%00",
            "\r\nHeader: injected",
        ]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


def check(topic: str, value: bytes | None) -> None:
    """The property: a command of the topic's type, an InvalidCommand, or UnreadableCommand."""
    try:
        result = decode_command(topic, value)
    except UnreadableCommand as exc:
        reason = exc.reason
        assert 0 < len(reason) < 2_000
        return
    if isinstance(result, InvalidCommand):
        assert 1 <= len(result.command_id) <= 128
        assert result.field
        assert result.message
        assert len(result.account) <= 64
        return
    assert isinstance(result, BY_TYPE[topic].model)
    assert isinstance(result, CallConnect | LwbAction | LegHangup)


@FUZZ
@given(st.sampled_from(TOPICS), st.binary(max_size=2_048))
@example("call.connect", b"\xef\xbb\xbf{}")  # UTF-8 BOM
@example("call.connect", b'{"command_id": "c", "from": NaN}')
@example("call.connect", b'{"command_id": "c", "time_limit": 1e999}')
@example("call.connect", b'{"command_id": "c", "command_id": 7}')  # duplicate keys
@example("lwb.action", b'{"command_id": "\\ud800"}')
@example("leg.hangup", b"null")
@example("leg.hangup", b"\x00" * 64)
def test_random_bytes(topic: str, value: bytes) -> None:
    check(topic, value)


@FUZZ
@given(st.sampled_from(TOPICS), JSON_VALUES)
def test_any_json_value(topic: str, value: Any) -> None:
    check(topic, json.dumps(value).encode())


@FUZZ
@given(
    st.sampled_from(TOPICS),
    st.data(),
    st.dictionaries(st.text(max_size=20), JSON_VALUES, max_size=4),
)
def test_valid_commands_with_fields_mutated(topic: str, data: st.DataObject, extra: Any) -> None:
    command = dict(VALID[topic])
    for name in data.draw(st.lists(st.sampled_from(sorted(command)), max_size=3)):
        command[name] = data.draw(JSON_VALUES)
    for name in data.draw(st.lists(st.sampled_from(sorted(command)), max_size=2)):
        command.pop(name, None)
    command |= extra
    check(topic, json.dumps(command).encode())


@FUZZ
@given(st.sampled_from(TOPICS), st.binary(max_size=64), st.integers(0, 200))
def test_truncated_and_spliced_commands(topic: str, junk: bytes, cut: int) -> None:
    text = json.dumps(VALID[topic]).encode()
    check(topic, text[:cut])
    check(topic, text[:cut] + junk + text[cut:])


@pytest.mark.parametrize("topic", TOPICS)
def test_the_valid_samples_decode(topic: str) -> None:
    assert isinstance(
        decode_command(topic, json.dumps(VALID[topic]).encode()), BY_TYPE[topic].model
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b" " * (MAX_COMMAND_BYTES + 1),
        b'{"command_id": "c", "pad": "' + b"x" * MAX_COMMAND_BYTES + b'"}',
        b'{"command_id": "c", "from": ' + b"9" * 5_000 + b"}",  # over int's digit limit
    ],
)
def test_empty_oversized_and_huge_numbers_are_unreadable(value: bytes | None) -> None:
    with pytest.raises(UnreadableCommand):
        decode_command("call.connect", value)


def test_unknown_topic_is_unreadable() -> None:
    with pytest.raises(UnreadableCommand, match="topic"):
        decode_command("call.connect.result", json.dumps(VALID["call.connect"]).encode())


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 100_000,
        b'{"command_id": "c", "custom_field": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_deeply_nested_json_is_unreadable(value: bytes) -> None:
    with pytest.raises(UnreadableCommand):
        decode_command("call.connect", value)
