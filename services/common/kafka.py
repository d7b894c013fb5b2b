"""Kafka plumbing shared by the services: the FastStream broker, topic creation, headers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from contracts.status import CallStatusEvent
from services.common.kafka_security import (
    KafkaAccessError,
    broker_security,
    check_access,
    security_options,
)
from services.common.settings import KafkaSettings

log = structlog.get_logger(__name__)

TOPIC_ALREADY_EXISTS = 36
#: TOPIC_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED: the ACLs refuse the user.
NOT_AUTHORIZED = (29, 31)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def make_broker(
    settings: KafkaSettings, *, client_id: str, apply_types: bool = True
) -> KafkaBroker:
    """A FastStream Kafka broker whose producer waits for every in-sync replica (acks=all),
    secured as the settings say (TLS, SASL). ``apply_types=False``: handlers get what the
    subscriber's decoder returns, nothing injected (FastDepends resolves a ``Context``
    argument such as ``message: KafkaMessage`` in a worker thread, per message)."""
    return KafkaBroker(
        # A list: FastStream would take a comma-separated string for one host name.
        [server.strip() for server in settings.bootstrap_servers.split(",") if server.strip()],
        security=broker_security(settings),
        client_id=f"{settings.client_id}-{client_id}",
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        request_timeout_ms=settings.request_timeout_ms,
        max_request_size=MAX_MESSAGE_BYTES,
        linger_ms=2,
        # FastStream logs through our structured logging, per-message lines at DEBUG.
        logger=logging.getLogger("voicebus.kafka"),
        log_level=logging.DEBUG,
        apply_types=apply_types,
    )


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """What every aiokafka client voicebus makes is given: where Kafka is and how to
    authenticate to it (TLS, SASL)."""
    return {"bootstrap_servers": settings.bootstrap_servers, **security_options(settings)}


def admin_client(settings: KafkaSettings, *, client_id: str = "admin") -> AIOKafkaAdminClient:
    """An (unstarted) aiokafka admin client, secured as the settings say."""
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-{client_id}",
        request_timeout_ms=settings.request_timeout_ms,
        **security_options(settings),
    )


async def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str],
    *,
    attempts: int = 3,
    wait: bool = True,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create ``topics`` when missing (idempotent).

    First the bootstrap servers are checked as every client will reach them
    (:func:`~services.common.kafka_security.check_access`): with ``wait``, a broker still
    coming up is waited for, within ``KAFKA_REQUEST_TIMEOUT_MS``; a wrong password, an
    untrusted certificate or an address that never answers raises
    :class:`~services.common.kafka_security.KafkaAccessError` naming the setting. Then the
    topics are created, retrying a transient admin failure up to ``attempts`` times.

    ``configs``: topic-level settings by topic name (e.g. ``cleanup.policy``)."""
    wanted = list(dict.fromkeys(topics))
    await check_access(settings, wait=wait)
    for attempt in range(1, attempts + 1):
        admin = admin_client(settings)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                await _create(admin, settings, missing, configs or {})
                log.info("kafka.topics.created", topics=missing)
            await _until_led(admin, wanted, within=settings.request_timeout_ms / 1000)
        except (KafkaError, TimeoutError) as exc:
            if attempt == attempts or isinstance(exc, KafkaAccessError):
                raise
            log.warning("kafka.topics.retry", attempt=attempt, error=repr(exc))
            await asyncio.sleep(min(0.2 * attempt, 2.0))
        else:
            return
        finally:
            await admin.close()


async def _until_led(admin: AIOKafkaAdminClient, topics: list[str], *, within: float) -> None:
    """Until the metadata shows every partition of ``topics`` with a leader: Kafka creates
    topics asynchronously, and a consumer started before then would not see them."""
    async with asyncio.timeout(within):
        while True:
            described = await admin.describe_topics(topics)
            if all(
                t["error_code"] == 0
                and t["partitions"]
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ) and {t["topic"] for t in described} >= set(topics):
                return
            await asyncio.sleep(0.1)


def _topic_config(settings: KafkaSettings, config: Mapping[str, str]) -> dict[str, str]:
    """A topic's own settings, with ``KAFKA_MIN_INSYNC_REPLICAS`` when set."""
    base = {}
    if settings.min_insync_replicas is not None:
        base["min.insync.replicas"] = str(settings.min_insync_replicas)
    return base | dict(config)


async def _create(
    admin: AIOKafkaAdminClient,
    settings: KafkaSettings,
    topics: list[str],
    configs: Mapping[str, Mapping[str, str]],
) -> None:
    new = [
        NewTopic(
            name=t,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.replication_factor,
            topic_configs=_topic_config(settings, configs.get(t, {})),
        )
        for t in topics
    ]
    try:
        response = await admin.create_topics(new)
    except TopicAlreadyExistsError:
        return
    for error in getattr(response, "topic_errors", ()):
        name, code = error[0], error[1]
        if code in NOT_AUTHORIZED:
            user = settings.sasl_username or "(no SASL user)"
            raise KafkaAccessError(
                "KAFKA_SASL_USERNAME",
                f"KAFKA_SASL_USERNAME={user} may not create topic {name} (error code {code}): "
                "grant it CREATE on the topic (or the cluster), or create the topics first",
            )
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise KafkaError(f"cannot create topic {name}: error code {code}")


async def topic_partitions(settings: KafkaSettings, topic: str) -> list[int]:
    """The partition ids of ``topic``, from a metadata request naming it.

    A consumer without a subscription knows no topic's partitions until it is assigned
    some (Apache Kafka answers its bootstrap metadata request with no topics), so ask."""
    admin = admin_client(settings)
    try:
        await admin.start()
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [
        p["partition"]
        for t in described
        if t["topic"] == topic and t["error_code"] == 0
        for p in t["partitions"]
    ]
    if not partitions:
        raise KafkaError(f"topic {topic} has no partitions in the metadata (was it created?)")
    return sorted(partitions)


async def cluster_id(settings: KafkaSettings) -> str:
    """The Kafka cluster's id (local state is only valid for the cluster it came from)."""
    admin = admin_client(settings)
    try:
        await admin.start()
        described = await admin.describe_cluster()
    finally:
        await admin.close()
    return str(described.get("cluster_id") or "unknown")


def cloudevent_headers(
    *,
    ce_type: str,
    source: str,
    subject: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """CloudEvents 1.0 binary-mode headers for a fact."""
    headers = {
        "ce_specversion": "1.0",
        "ce_id": event_id or str(uuid.uuid4()),
        "ce_type": ce_type,
        "ce_source": source,
        "ce_time": (time or datetime.now(UTC)).isoformat(),
        "content-type": "application/json",
    }
    if subject:
        headers["ce_subject"] = subject
    if extra:
        headers.update(extra)
    return headers


def status_fact_headers(event: CallStatusEvent, *, source: str) -> dict[str, str]:
    """CloudEvents binary-mode headers of a ``call.status`` fact (ingress and call watch)."""
    return cloudevent_headers(
        ce_type=f"voicebus.call.status.{event.event_type}",
        source=source,
        event_id=event.event_id,
        subject=event.call_sid,
        time=event.received_at,
    )
