"""Facts read with the CloudEvents SDK's Kafka binding (PyPI ``cloudevents``): a consumer
that knows nothing of voicebus gets valid CloudEvents 1.0 events (binary content mode) from
``call.connect.result`` and ``call.status``, with the fact as the event's data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event, from_kafka_event

from contracts.topics import CALL_CONNECT, CALL_CONNECT_RESULT, CALL_STATUS
from tests.integration.stack import publish, running_stack
from tests.support.broker import SuiteBroker
from tests.support.facts import Fact, FactReader

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
async def facts(broker: SuiteBroker, kafka_env: dict[str, str]) -> AsyncIterator[FactReader]:
    """The facts of a running voicebus, read from the start."""
    with running_stack(kafka_env):
        reader = FactReader(broker.bootstrap_servers, [CALL_CONNECT_RESULT, CALL_STATUS])
        await reader.start()
        try:
            yield reader
        finally:
            await reader.stop()


def as_cloudevent(fact: Fact) -> BaseCloudEvent:
    """The SDK's reading of the record as it came off the wire: headers, key, value."""
    assert fact.raw is not None
    message = KafkaMessage(headers=dict(fact.raw_headers), key=fact.key, value=fact.raw)
    event = from_binary_event(message)
    # The SDK's mode detection agrees: binary mode (ce_ headers), not structured.
    assert from_kafka_event(message).get_attributes() == event.get_attributes()
    return event


def assert_recent(event: BaseCloudEvent) -> None:
    time = event.get_time()
    assert time is not None
    assert time.tzinfo is not None
    assert abs(datetime.now(UTC) - time) < timedelta(minutes=5)


async def test_results_and_call_status_facts_are_cloudevents_to_the_sdk(
    broker: SuiteBroker, facts: FactReader
) -> None:
    command_id = f"ce-{uuid.uuid4().hex[:12]}"
    await publish(
        broker.bootstrap_servers,
        CALL_CONNECT,
        {
            "command_id": command_id,
            "from": "+919876543210",
            "to": "+919812345678",
            "caller_id": "08047112345",
        },
        key="+919876543210",
    )

    (result_fact,) = await facts.wait_for(
        CALL_CONNECT_RESULT,
        lambda f: isinstance(f.value, dict) and f.value.get("command_id") == command_id,
        timeout=45,
    )
    result = as_cloudevent(result_fact)
    assert result.get_specversion() == "1.0"
    assert result.get_type() == "voicebus.call.connect.result"
    assert result.get_source().startswith("voicebus/")
    assert result.get_id() == result_fact.headers["ce_id"]
    assert result.get_datacontenttype() == "application/json"
    assert_recent(result)
    data = result.get_data()
    assert isinstance(data, dict)
    assert data == result_fact.value
    assert data["outcome"] == "accepted"
    call_sid = data["call_sid"]
    assert result.get_extension("partitionkey") == call_sid

    status_facts = await facts.wait_for(
        CALL_STATUS,
        lambda f: f.key == call_sid and f.value["event_type"] == "terminal",
        timeout=45,
    )
    answered = facts.matching(
        CALL_STATUS, lambda f: f.key == call_sid and f.value["event_type"] == "answered"
    )
    assert answered, "the sandbox answers the call before it ends"
    events = [as_cloudevent(fact) for fact in [*answered, *status_facts]]
    for event in events:
        data = event.get_data()
        assert isinstance(data, dict)
        assert event.get_type() == f"voicebus.call.status.{data['event_type']}"
        assert event.get_subject() == call_sid
        assert event.get_id() == data["event_id"]
        assert event.get_extension("partitionkey") == call_sid
        assert event.get_datacontenttype() == "application/json"
        assert_recent(event)
    assert len({event.get_id() for event in events}) == len(events)
