"""Composition root of the executor: one broker, one HTTP client, one of everything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import structlog
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from contracts.topics import ALL_TOPICS
from services.common.http import Readiness, probe_routes
from services.common.kafka import ensure_topics, make_broker
from services.common.kafka_health import (
    HEALTH_TOPIC,
    HEALTH_TOPIC_CONFIG,
    KafkaHealth,
    publish_with,
    start_write_probe,
)
from services.executor.call_watch import CallWatch, WatchPolicy
from services.executor.call_watch_kafka import (
    CallWatchRunner,
    PrometheusWatchMetrics,
    WatchAccount,
)
from services.executor.dispatch import KeyOrderedDispatcher
from services.executor.handlers import OffsetCommitter, register_handlers
from services.executor.ledger import CommandLedger
from services.executor.ledger_kafka import LEDGER_TOPIC, LEDGER_TOPIC_CONFIG, KafkaLedgerLog
from services.executor.mapping import CallbackTarget
from services.executor.metrics import ExecutorMetrics
from services.executor.numbers import NumberCache
from services.executor.pipeline import CommandPipeline
from services.executor.publishing import FactPublisher
from services.executor.service import Account, CommandService
from services.executor.settings import ExecutorSettings
from services.exotel.client import ExotelClient
from services.exotel.http import make_http_client
from services.exotel.limiter import RateLimiter, partition_share

log = structlog.get_logger(__name__)


def create_app(settings: ExecutorSettings) -> Starlette:
    """The executor as an ASGI app: Kafka consumption runs in its lifespan."""
    registry = CollectorRegistry()
    metrics = ExecutorMetrics(registry)
    metrics.max_in_flight.set(settings.max_in_flight)
    readiness = Readiness()
    kafka_health = KafkaHealth()
    exotel_accounts = settings.exotel.accounts()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await ensure_topics(
            settings.kafka,
            (*ALL_TOPICS, LEDGER_TOPIC, HEALTH_TOPIC),
            configs={LEDGER_TOPIC: LEDGER_TOPIC_CONFIG, HEALTH_TOPIC: HEALTH_TOPIC_CONFIG},
        )
        broker = make_broker(settings.kafka, client_id="executor")
        ledger = CommandLedger()
        ledger_log = KafkaLedgerLog(broker, settings.kafka, ledger)
        ledger.attach(ledger_log)
        dispatcher = KeyOrderedDispatcher(settings.max_in_flight, on_change=metrics.in_flight.set)
        committer = OffsetCommitter(dispatcher, settings.commit_interval_seconds)
        limiter = RateLimiter.from_accounts(exotel_accounts, on_wait=metrics.limiter_waited)

        def follow_partitions(owned: int, total: int) -> None:
            limiter.set_share(partition_share(owned, total))
            metrics.rate_share.set(limiter.share)

        async with make_http_client(settings.exotel, concurrency=settings.max_in_flight) as http:
            clients = {
                name: ExotelClient(account, http, throttle=limiter, observer=metrics)
                for name, account in exotel_accounts.items()
            }
            pipeline = CommandPipeline(
                _command_service(settings, clients, ledger, metrics),
                FactPublisher(broker),
                metrics,
                stopping=lambda: dispatcher.closing,
                ledger=ledger,
                kafka_health=kafka_health,
                owns=dispatcher.owns,
            )
            register_handlers(
                broker,
                settings,
                dispatcher=dispatcher,
                committer=committer,
                pipeline=pipeline,
                on_share=follow_partitions,
            )
            # The ledger must be read before the first command is consumed: connect the
            # producer (barriers), load the ledger, and only then start the subscriber.
            await broker.connect()
            readiness.reason = "reading the command ledger"
            await ledger_log.start()
            await broker.start()
            probe = await start_write_probe(
                settings.kafka, publish_with(broker), kafka_health, service="executor"
            )
            committer.start()
            call_watch = _call_watch(settings, broker, clients, metrics)
            if call_watch is not None:
                await call_watch.start()
            readiness.ready, readiness.reason = True, "consuming"
            log.info(
                "executor.started", accounts=sorted(clients), max_in_flight=settings.max_in_flight
            )
            try:
                yield
            finally:
                readiness.ready, readiness.reason = False, "stopping"
                if call_watch is not None:
                    await call_watch.stop()
                await probe.stop()
                await committer.stop()
                positions = await dispatcher.close(settings.shutdown_grace_seconds)
                await committer.commit(positions)
                await ledger_log.stop()
                await broker.stop()
                log.info("executor.stopped", committed_partitions=len(positions))

    def ready() -> tuple[bool, dict[str, object]]:
        return _ready(readiness, kafka_health, sorted(exotel_accounts))

    return Starlette(routes=probe_routes(ready, registry), lifespan=lifespan)


def _ready(
    readiness: Readiness, kafka_health: KafkaHealth, accounts: list[str]
) -> tuple[bool, dict[str, object]]:
    """Consuming, and Kafka takes writes (results, ledger entries, the probe's)."""
    reason = readiness.reason
    if readiness.ready and not kafka_health.writable:
        reason = "kafka does not take writes: results wait (commands stay uncommitted)"
    detail: dict[str, object] = {"reason": reason, "accounts": accounts}
    return readiness.ready and kafka_health.writable, detail | kafka_health.status()


def _command_service(
    settings: ExecutorSettings,
    clients: Mapping[str, ExotelClient],
    ledger: CommandLedger,
    metrics: ExecutorMetrics,
) -> CommandService:
    return CommandService(
        accounts={
            name: Account(
                name=name,
                default_api=client.account.api,
                gateway=client,
                dnd_check=client.account.dnd_check,
                lwb_encoding=client.account.lwb_request_encoding,
            )
            for name, client in clients.items()
        },
        callbacks=CallbackTarget(
            settings.callback_public_url,
            settings.callback_token.get_secret_value(),
            settings.callback_signer(),
        ),
        retry_policy=settings.retry_policy(),
        callback_content_type=settings.callback_content_type,
        observer=metrics,
        journal=ledger,
        reconcile_window_seconds=settings.reconcile_window_seconds,
        reconcile_poll_seconds=settings.reconcile_poll_seconds,
        numbers=NumberCache(settings.number_cache_hours * 3600, settings.number_cache_max),
        backfill_page_size=settings.backfill_page_size,
    )


def _call_watch(
    settings: ExecutorSettings,
    broker: KafkaBroker,
    clients: Mapping[str, ExotelClient],
    metrics: ExecutorMetrics,
) -> CallWatchRunner | None:
    """Missing-callback recovery and the finalisation of finished calls
    (services/executor/README.md): both ask Exotel through the same ExotelClient per
    account, so the shared rate limiter's GET budget applies."""
    if not settings.call_watch_enabled and not settings.call_details_enabled:
        return None

    async def publish(value: bytes, topic: str, key: bytes, headers: dict[str, str]) -> None:
        await broker.publish(value, topic=topic, key=key, headers=headers)

    return CallWatchRunner(
        settings.kafka,
        group_id=settings.call_watch_group_id,
        watch=CallWatch(
            WatchPolicy(
                after_seconds=settings.call_watch_after_seconds,
                horizon_seconds=settings.call_watch_horizon_hours * 3600,
                watch_missing=settings.call_watch_enabled,
                finalise_after_seconds=settings.call_details_after_seconds
                if settings.call_details_enabled
                else None,
            )
        ),
        accounts={
            name: WatchAccount(gateway=client, default_api=client.account.api)
            for name, client in clients.items()
        },
        publish=publish,
        metrics=PrometheusWatchMetrics(metrics),
        sweep_seconds=settings.call_watch_sweep_seconds,
        concurrency=settings.call_watch_concurrency,
        publish_timeout_seconds=settings.kafka.request_timeout_ms / 1000,
    )
