"""Unreadable messages go to the DLQ; readable but invalid ones are rejected by field."""

from __future__ import annotations

import json

import pytest

from contracts.commands import CallConnect
from contracts.decoding import InvalidCommand, UnreadableCommand, decode_command

VALID = {
    "command_id": "c-1",
    "from": "+919876543210",
    "to": "+919812345678",
    "caller_id": "08047112345",
}


def test_a_valid_call_connect_decodes_to_the_command() -> None:
    command = decode_command("call.connect", json.dumps(VALID).encode())
    assert isinstance(command, CallConnect)
    assert command.from_ == "+919876543210"
    assert command.status_events == ["answered", "terminal"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON list where an object"),
        (json.dumps({"from": "+91"}).encode(), "command_id"),
        (json.dumps({**VALID, "command_id": "x" * 129}).encode(), "command_id"),
    ],
)
def test_unreadable_messages_say_why(value: bytes, reason: str) -> None:
    with pytest.raises(UnreadableCommand, match=reason):
        decode_command("call.connect", value)


def test_a_missing_destination_is_rejected_naming_the_rule() -> None:
    decoded = decode_command(
        "call.connect", json.dumps({k: v for k, v in VALID.items() if k != "to"}).encode()
    )
    assert isinstance(decoded, InvalidCommand)
    assert "exactly one of 'to' or 'flow_url'" in decoded.message


def test_an_invalid_field_is_rejected_naming_the_field() -> None:
    decoded = decode_command("call.connect", json.dumps({**VALID, "time_limit": 99999}).encode())
    assert isinstance(decoded, InvalidCommand)
    assert decoded.command_id == "c-1"
    assert decoded.field == "time_limit"
    assert "time_limit" in decoded.message


def test_an_unknown_field_is_rejected_rather_than_ignored() -> None:
    decoded = decode_command("call.connect", json.dumps({**VALID, "tto": "+91"}).encode())
    assert isinstance(decoded, InvalidCommand)
    assert decoded.field == "tto"


def test_a_message_on_an_unknown_topic_is_unreadable() -> None:
    with pytest.raises(UnreadableCommand, match="no command"):
        decode_command("call.status", json.dumps(VALID).encode())
