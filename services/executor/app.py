"""Composition root of the executor: one broker, one HTTP client, one of everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from contracts.topics import ALL_TOPICS
from services.common.http import probe_routes
from services.common.kafka import ensure_topics, make_broker
from services.executor.dispatch import KeyOrderedDispatcher
from services.executor.handlers import OffsetCommitter, register_handlers
from services.executor.ledger import CommandLedger
from services.executor.ledger_kafka import LEDGER_TOPIC, LEDGER_TOPIC_CONFIG, KafkaLedgerLog
from services.executor.mapping import CallbackTarget
from services.executor.metrics import ExecutorMetrics
from services.executor.pipeline import CommandPipeline
from services.executor.publishing import FactPublisher
from services.executor.service import Account, CommandService
from services.executor.settings import ExecutorSettings
from services.exotel.client import ExotelClient
from services.exotel.http import make_http_client
from services.exotel.limiter import RateLimiter, partition_share

log = structlog.get_logger(__name__)


@dataclass
class Readiness:
    ready: bool = False
    reason: str = "starting"


def create_app(settings: ExecutorSettings) -> Starlette:
    """The executor as an ASGI app: Kafka consumption runs in its lifespan."""
    registry = CollectorRegistry()
    metrics = ExecutorMetrics(registry)
    metrics.max_in_flight.set(settings.max_in_flight)
    readiness = Readiness()
    exotel_accounts = settings.exotel.accounts()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await ensure_topics(
            settings.kafka,
            (*ALL_TOPICS, LEDGER_TOPIC),
            configs={LEDGER_TOPIC: LEDGER_TOPIC_CONFIG},
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

        async with make_http_client(settings.exotel) as http:
            accounts = {
                name: Account(
                    name=name,
                    default_api=account.api,
                    gateway=ExotelClient(account, http, throttle=limiter, observer=metrics),
                )
                for name, account in exotel_accounts.items()
            }
            service = CommandService(
                accounts=accounts,
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
            )
            pipeline = CommandPipeline(
                service,
                FactPublisher(broker),
                metrics,
                stopping=lambda: dispatcher.closing,
                ledger=ledger,
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
            committer.start()
            readiness.ready, readiness.reason = True, "consuming"
            log.info(
                "executor.started", accounts=sorted(accounts), max_in_flight=settings.max_in_flight
            )
            try:
                yield
            finally:
                readiness.ready, readiness.reason = False, "stopping"
                await committer.stop()
                positions = await dispatcher.close(settings.shutdown_grace_seconds)
                await committer.commit(positions)
                await ledger_log.stop()
                await broker.stop()
                log.info("executor.stopped", committed_partitions=len(positions))

    def ready() -> tuple[bool, dict[str, object]]:
        return readiness.ready, {"reason": readiness.reason, "accounts": sorted(exotel_accounts)}

    return Starlette(routes=probe_routes(ready, registry), lifespan=lifespan)
