"""The command table names every command type once, and what derives from it agrees."""

from __future__ import annotations

from typing import get_args

import pytest

from contracts.catalog import BY_TYPE, COMMANDS, spec_for, spec_of
from contracts.commands import CallConnect, CommandType, LegHangup, LwbAction
from contracts.topics import ALL_TOPICS, COMMAND_TOPICS, RESULT_TOPIC, dlq

CONNECT = CallConnect.model_validate(
    {"command_id": "c-1", "from": "+919876543210", "to": "+919812345678", "caller_id": "0804711"}
)
HANGUP = LegHangup.model_validate({"command_id": "c-2", "call_sid": "call-1", "leg": "all"})


def test_every_command_type_has_exactly_one_row() -> None:
    assert [spec.name for spec in COMMANDS] == list(get_args(CommandType))


def test_the_topics_come_from_the_table() -> None:
    assert COMMAND_TOPICS == ("call.connect", "lwb.action", "leg.hangup")
    assert RESULT_TOPIC["lwb.action"] == "lwb.action.result"
    for spec in COMMANDS:
        assert {spec.topic, spec.result_topic, dlq(spec.topic)} <= set(ALL_TOPICS)


def test_a_decoded_command_finds_its_row() -> None:
    assert spec_of(CONNECT).name == "call.connect"
    assert spec_of(HANGUP).name == "leg.hangup"
    assert spec_for("call.status") is None


def test_the_recommended_key_is_the_agent_for_a_call_and_the_call_sid_otherwise() -> None:
    assert spec_of(CONNECT).recommended_key(CONNECT) == "+919876543210"
    assert spec_of(HANGUP).recommended_key(HANGUP) == "call-1"


def test_a_call_connect_orders_by_its_own_topic_and_call_commands_across_topics() -> None:
    key = b"abc"
    assert BY_TYPE["call.connect"].ordering_key(key) == "call.connect:616263"
    assert BY_TYPE["lwb.action"].ordering_key(key) == BY_TYPE["leg.hangup"].ordering_key(key)


def test_only_commands_of_a_call_are_held_for_the_ordering_window() -> None:
    assert {spec.name for spec in COMMANDS if spec.hold} == {"lwb.action", "leg.hangup"}


@pytest.mark.parametrize(
    ("command_type", "body", "label"),
    [
        ("lwb.action", {"action": "whisper"}, "whisper"),
        ("lwb.action", {"action": "shout"}, "invalid"),
        ("leg.hangup", {"leg": "customer"}, "customer"),
        ("leg.hangup", {"leg_sid": "leg-1"}, "sid"),
        ("leg.hangup", {"leg": ["all"]}, "invalid"),
    ],
)
def test_results_are_labelled_from_their_command(
    command_type: str, body: dict[str, object], label: str
) -> None:
    result_label = BY_TYPE[command_type].result_label
    assert result_label is not None
    assert result_label.of(body) == label


def test_a_call_connect_places_a_call_and_has_no_label() -> None:
    spec = BY_TYPE["call.connect"]
    assert spec.places_call
    assert spec.result_label is None
    assert spec.model is CallConnect
    assert BY_TYPE["lwb.action"].model is LwbAction
