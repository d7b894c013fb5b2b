"""Consumer lag is exact on Apache Kafka: a group that committed at the end and then has
seven new records to read lags by seven, even when the seven came in one batch (Tansu
reports a batch's end as its first offset + 1, so there lag is only approximate)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.topics import CALL_STATUS
from tests.metrics.facts import sample_event, status_json
from tests.metrics.scrape import sample, wait_for_metrics
from tests.support.broker import SuiteBroker
from tests.support.kafka_admin import describe
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.integration

NEW_RECORDS = 7
LAG = "voicebus_consumer_group_lag_messages"


@pytest.fixture
def apache_kafka(broker: SuiteBroker) -> SuiteBroker:
    if not broker.is_apache_kafka:
        pytest.skip(f"end offsets are exact on Apache Kafka only (this run: {broker.kind})")
    return broker


@pytest.fixture
def crm_group() -> str:
    return f"crm-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def metrics_service(kafka_env: dict[str, str], crm_group: str) -> Iterator[ServiceProcess]:
    env = {
        **kafka_env,
        "METRICS_GROUP_ID": f"metrics-{uuid.uuid4().hex[:8]}",
        "METRICS_LAG_GROUPS": crm_group,
        "METRICS_LAG_INTERVAL_SECONDS": "0.5",
    }
    with ServiceProcess("metrics", env) as service:
        yield service


async def commit_at_the_end(bootstrap: str, group: str, topic: str) -> None:
    """``group`` has read everything on ``topic`` so far."""
    (described,) = await describe(bootstrap, [topic])
    tps = [TopicPartition(topic, int(p["partition"])) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def publish_one_batch(bootstrap: str, count: int) -> None:
    """``count`` call.status facts for one call, sent together (one batch on the wire)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=200)
    await producer.start()
    try:
        sid = f"lag-{uuid.uuid4().hex}"
        pending = [
            await producer.send(
                CALL_STATUS,
                status_json(sample_event("v1_terminal.json", call_sid=sid)),
                key=sid.encode(),
            )
            for _ in range(count)
        ]
        for future in pending:
            await future
    finally:
        await producer.stop()


async def test_a_group_lags_by_exactly_the_records_it_has_not_read(
    apache_kafka: SuiteBroker, metrics_service: ServiceProcess, crm_group: str
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    await commit_at_the_end(bootstrap, crm_group, CALL_STATUS)
    await wait_for_metrics(
        metrics_service.url,
        lambda s: (LAG, frozenset({("group", crm_group), ("topic", CALL_STATUS)})) in s,
        what="the CRM group's lag to be reported",
    )
    assert (
        sample(
            await wait_for_metrics(metrics_service.url, lambda s: True),
            LAG,
            group=crm_group,
            topic=CALL_STATUS,
        )
        == 0
    )

    await publish_one_batch(bootstrap, NEW_RECORDS)

    await wait_for_metrics(
        metrics_service.url,
        lambda s: sample(s, LAG, group=crm_group, topic=CALL_STATUS) == NEW_RECORDS,
        what=f"a lag of exactly {NEW_RECORDS}",
    )
