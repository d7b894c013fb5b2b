"""``VoicebusClient`` without a broker: validation before publishing, Kafka unreachable."""

from __future__ import annotations

import pytest

from contracts import CallConnect, LegHangup, LwbAction
from services.client import (
    CommandNotValid,
    KafkaUnavailable,
    VoicebusClient,
    command_key,
    command_type,
    encode_command,
)
from services.common.processes import free_port
from services.common.settings import KafkaSettings


def unreachable() -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=2000)


CONNECT = {"command_id": "c-1", "from": "+919876543210", "to": "+9198", "caller_id": "0804711"}


def test_keys_and_types_follow_the_design() -> None:
    connect = CallConnect.model_validate(CONNECT)
    hangup = LegHangup(command_id="h-1", call_sid="abc", leg="agent")
    lwb = LwbAction(command_id="l-1", call_sid="abc", action="listen", supervisor="+919800000000")
    assert (command_type(connect), command_key(connect)) == ("call.connect", "+919876543210")
    assert (command_type(hangup), command_key(hangup)) == ("leg.hangup", "abc")
    assert (command_type(lwb), command_key(lwb)) == ("lwb.action", "abc")


def test_encoded_command_uses_the_contract_names() -> None:
    payload = encode_command(CallConnect.model_validate(CONNECT))
    assert b'"from":"+919876543210"' in payload
    assert b"from_" not in payload
    assert b"null" not in payload


async def test_a_command_the_executor_would_reject_is_not_published() -> None:
    # model_construct skips validation, like a hand-built object could; send() must not.
    bogus = CallConnect.model_construct(
        command_id="c-2", from_="+919876543210", caller_id="0804711", to=None, flow_url=None
    )
    client = VoicebusClient(unreachable())
    with pytest.raises(CommandNotValid, match="exactly one of 'to' or 'flow_url'"):
        await client.send(bogus, timeout=1)  # raised before any Kafka connection
    await client.stop()


async def test_unreachable_kafka_raises_kafka_unavailable() -> None:
    client = VoicebusClient(unreachable())
    with pytest.raises(KafkaUnavailable, match="Kafka unreachable at "):
        await client.send(CallConnect.model_validate(CONNECT), timeout=1)
    await client.stop()
