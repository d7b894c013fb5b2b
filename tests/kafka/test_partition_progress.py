"""The consumer's fetch progress as the executor's dispatcher reads it, on a real broker:
once a command of one topic was fetched, the consumer knows how far the co-partitioned
partition of the other topic goes, and where it started reading it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings
from services.executor.progress_kafka import KafkaPartitionProgress

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    names = (f"voicebus.test.hangup-{run}", f"voicebus.test.lwb-{run}")
    await ensure_topics(kafka_settings.model_copy(update={"topic_partitions": 1}), names)
    return names


@pytest.fixture
async def consumer(
    kafka_settings: KafkaSettings, topics: tuple[str, str]
) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        group_id=f"voicebus-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    yield consumer
    await consumer.stop()


async def publish(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"call-1")
    finally:
        await producer.stop()


async def consume_until(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Take records (as the executor's subscriber does, one at a time) until one of
    ``topic`` came."""
    async with asyncio.timeout(30):
        while (await consumer.getone()).topic != topic:
            pass


async def test_after_a_command_was_fetched_the_other_topics_end_and_start_are_known(
    kafka_settings: KafkaSettings, topics: tuple[str, str], consumer: AIOKafkaConsumer
) -> None:
    hangups, lwb = topics
    progress = KafkaPartitionProgress(lambda: consumer)
    async with asyncio.timeout(30):
        while len(consumer.assignment()) < 2:
            await asyncio.sleep(0.05)
    progress.assigned((tp.topic, tp.partition) for tp in consumer.assignment())

    # listen and barge acknowledged, then the hangup published
    await publish(kafka_settings.bootstrap_servers, lwb, b"listen", b"barge")
    await publish(kafka_settings.bootstrap_servers, hangups, b"hangup")
    await consume_until(consumer, hangups)

    mark = progress.mark((hangups, 0))
    assert mark is not None
    assert progress.end_offset((lwb, 0), since=mark) == 2, "both earlier commands counted"
    async with asyncio.timeout(10):
        while progress.start_offset((lwb, 0)) is None:
            await asyncio.sleep(0.05)
    assert progress.start_offset((lwb, 0)) == 0, "nothing committed: read from the start"
    await progress.stop()


async def test_a_partition_not_assigned_to_the_consumer_is_not_known(
    topics: tuple[str, str], consumer: AIOKafkaConsumer
) -> None:
    progress = KafkaPartitionProgress(lambda: consumer)
    assert progress.mark(("voicebus.test.elsewhere", 0)) is None
    assert progress.start_offset((topics[0], 0)) is None, "not looked up before an assignment"
