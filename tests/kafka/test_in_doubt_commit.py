"""An in-doubt transaction is settled by evidence: a record of a committed transaction is
found by a ``read_committed`` reader at its acknowledged offset, one of an aborted
transaction is not (the lane then sends it again; see TransactionalLane._commit)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings
from services.executor.state.kafka_lanes import record_committed
from tests.support.broker import SuiteBroker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def _transaction(producer: AIOKafkaProducer, topic: str, *, commit: bool) -> Any:
    await producer.begin_transaction()
    ack = await (await producer.send(topic, b"{}", key=b"command", partition=0))
    if commit:
        await producer.commit_transaction()
    else:
        await producer.abort_transaction()
    return ack


async def test_a_committed_record_is_found_and_an_aborted_one_is_not(
    broker: SuiteBroker, kafka_settings: KafkaSettings
) -> None:
    if not broker.transactions:
        pytest.skip(f"in-doubt transactions need Kafka transactions (this run: {broker.kind})")
    topic = f"test.in-doubt.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_settings, [topic])
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers,
        transactional_id=f"test-in-doubt-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
        acks="all",
    )
    await producer.start()
    try:
        committed = await _transaction(producer, topic, commit=True)
        aborted = await _transaction(producer, topic, commit=False)
        # the aborted one is the partition's last transaction: nothing follows it
        assert await record_committed(kafka_settings, aborted) is False
        later = await _transaction(producer, topic, commit=True)
    finally:
        await producer.stop()

    assert await record_committed(kafka_settings, committed) is True
    assert await record_committed(kafka_settings, aborted) is False
    assert await record_committed(kafka_settings, later) is True
