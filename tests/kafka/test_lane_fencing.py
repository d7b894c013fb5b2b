"""A replica that takes a partition over fences both of the old owner's lanes, its intents'
and its outcomes': a stalled old owner can then neither record an intent (so it sends no
request) nor commit an outcome, and a ``read_committed`` reader sees only the new owner's
records."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.kafka import client_options, ensure_topics
from services.common.settings import KafkaSettings
from services.executor.state.kafka_lanes import KafkaLanes
from services.executor.state.lanes import LaneClosed
from services.executor.state.records import Record
from tests.support.broker import SuiteBroker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def no_positions(partition: int) -> object:
    def positions() -> Mapping[tuple[str, int], int]:
        return {}

    return positions


def replica(settings: KafkaSettings, group: str) -> KafkaLanes:
    return KafkaLanes(settings, group_id=group, transactional=True, positions_of=no_positions)


def written(topic: str, key: str) -> Record:
    return Record(topic, 0, key.encode(), b"{}", [])


async def committed_keys(settings: KafkaSettings, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, isolation_level="read_committed", **client_options(settings)
    )
    tp = TopicPartition(topic, 0)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        keys: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            keys += [r.key for r in batch.get(tp, []) if r.key is not None]
        return keys
    finally:
        await consumer.stop()


async def test_the_new_owner_of_a_partition_fences_the_old_owners_intents_and_outcomes(
    broker: SuiteBroker, kafka_settings: KafkaSettings
) -> None:
    if not broker.transactions:
        pytest.skip(f"fencing needs Kafka transactions (this run: {broker.kind})")
    topic = f"test.lane-fencing.{uuid.uuid4().hex[:8]}"
    group = f"test-fencing-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_settings, [topic])
    old, new = replica(kafka_settings, group), replica(kafka_settings, group)
    await old.start()
    await new.start()
    try:
        await old.open([0])
        await old.lane(0).write_now([written(topic, "old-intent-before")])
        await new.open([0])  # the takeover: both of the partition's producers fenced

        with pytest.raises(LaneClosed):
            await old.lane(0).write_now([written(topic, "old-intent-after")])
        await new.lane(0).write_now([written(topic, "new-intent")])
        await new.lane(0).finish([written(topic, "new-outcome")])
        await new.lane(0).flush()
        # the old owner's outcome is queued, and its transaction is refused as fenced
        await old.lane(0).finish([written(topic, "old-outcome-after")])
        await old.lane(0).flush()
        with pytest.raises(LaneClosed):
            await old.lane(0).finish([written(topic, "old-outcome-later")])
    finally:
        await old.stop()
        await new.stop()

    assert await committed_keys(kafka_settings, topic) == [
        b"old-intent-before",
        b"new-intent",
        b"new-outcome",
    ]
