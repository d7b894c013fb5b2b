"""Topics voicebus creates carry their configs on the real engine (Tansu stores, never
enforces them, so this runs on Apache Kafka only)."""

from __future__ import annotations

import uuid

import pytest

from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings
from services.executor.state.records import LEDGER_TOPIC_CONFIG
from tests.support.broker import SuiteBroker
from tests.support.kafka_admin import describe, topic_configs

pytestmark = pytest.mark.integration


@pytest.fixture
def apache_kafka(broker: SuiteBroker) -> SuiteBroker:
    if not broker.is_apache_kafka:
        pytest.skip(f"topic configs are enforced by Apache Kafka only (this run: {broker.kind})")
    return broker


async def test_a_created_topic_has_its_partitions_and_configs(
    apache_kafka: SuiteBroker, kafka_settings: KafkaSettings
) -> None:
    topic = f"voicebus.test.ledger-{uuid.uuid4().hex[:8]}"
    settings = kafka_settings.model_copy(update={"min_insync_replicas": 1, "topic_partitions": 3})
    await ensure_topics(settings, [topic], configs={topic: LEDGER_TOPIC_CONFIG})

    configs = await topic_configs(apache_kafka.bootstrap_servers, topic)
    assert configs["cleanup.policy"] == "compact"
    assert configs["retention.ms"] == LEDGER_TOPIC_CONFIG["retention.ms"]
    assert configs["min.insync.replicas"] == "1"
    (described,) = await describe(apache_kafka.bootstrap_servers, [topic])
    assert len(described["partitions"]) == 3


async def test_ensuring_an_existing_topic_leaves_it_as_it_is(
    apache_kafka: SuiteBroker, kafka_settings: KafkaSettings
) -> None:
    topic = f"voicebus.test.existing-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_settings, [topic], configs={topic: {"retention.ms": "60000"}})
    await ensure_topics(kafka_settings, [topic], configs={topic: {"retention.ms": "120000"}})
    assert (await topic_configs(apache_kafka.bootstrap_servers, topic))["retention.ms"] == "60000"
