"""Mutual TLS on Apache Kafka: brokers that require a client certificate from their CA.

With ``KAFKA_SSL_CERT_FILE`` and ``KAFKA_SSL_KEY_FILE`` the admin client, the producer of
the client helper and a topic reader all work; without them the start-up check says the
brokers want a client certificate, at once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from contracts import CallConnect
from contracts.topics import ALL_TOPICS, CALL_CONNECT
from services.brokers.apache_kafka import ApacheKafka
from services.client import Record, TopicReader, VoicebusClient
from services.common.kafka import ensure_topics
from services.common.kafka_security import KafkaAccessError, check_access
from services.common.settings import KafkaSettings
from tests.support.tls import Certificates, secured_kafka

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@dataclass(frozen=True)
class MutualKafka:
    kafka: ApacheKafka
    certs: Certificates

    def settings(self, *, with_certificate: bool = True) -> KafkaSettings:
        values: dict[str, object] = {
            "bootstrap_servers": self.kafka.bootstrap_servers,
            "request_timeout_ms": 5000,
            "topic_partitions": 2,
            "security_protocol": "SSL",
            "ssl_ca_file": self.certs.ca_file,
        }
        if with_certificate:
            values |= {
                "ssl_cert_file": self.certs.client_cert_file,
                "ssl_key_file": self.certs.client_key_file,
            }
        return KafkaSettings.model_validate(values)


@pytest.fixture(scope="module")
def mutual(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutualKafka]:
    directory = tmp_path_factory.mktemp("certs")
    with secured_kafka(directory, protocol="SSL", mutual=True) as (kafka, certs):
        yield MutualKafka(kafka, certs)


async def test_with_the_client_certificate_commands_are_published_and_read(
    mutual: MutualKafka,
) -> None:
    settings = mutual.settings()
    await ensure_topics(settings, ALL_TOPICS)
    command = CallConnect.model_validate(
        {
            "command_id": f"mtls-{uuid.uuid4().hex[:10]}",
            "from": "+919876543210",
            "to": "+919812345678",
            "caller_id": "08047112345",
        }
    )
    async with VoicebusClient(settings) as client:
        published = await client.publish(command)
    reader = await TopicReader(settings, [CALL_CONNECT], since=None).start()
    try:
        found: list[Record] = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            records = await reader.batch(0.5)
            found = [
                r
                for r in records
                if r.offset == published.offset and r.partition == published.partition
            ]
    finally:
        await reader.stop()
    assert [r.json_value()["command_id"] for r in found] == [command.command_id]


async def test_without_a_client_certificate_the_check_says_it_is_wanted(
    mutual: MutualKafka,
) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaAccessError) as caught:
        await check_access(mutual.settings(with_certificate=False))
    assert caught.value.setting == "KAFKA_SSL_CERT_FILE"
    assert "wants a client certificate" in str(caught.value)
    assert time.monotonic() - started < 2.0
