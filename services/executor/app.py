"""Composition root of the executor: one broker, one HTTP client per account, one of
everything else."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from contracts.topics import ALL_TOPICS, COMMAND_TOPICS
from services.common.http import Readiness, probe_routes
from services.common.kafka import cluster_id, ensure_topics, make_broker, topic_partitions
from services.common.kafka_health import (
    HEALTH_TOPIC,
    HEALTH_TOPIC_CONFIG,
    KafkaHealth,
    publish_with,
    start_write_probe,
)
from services.executor.call_watch import CallWatch, WatchPolicy
from services.executor.call_watch_kafka import (
    WATCHED_TOPICS,
    CallWatchRunner,
    PrometheusWatchMetrics,
    WatchAccount,
)
from services.executor.dispatch import KeyOrderedDispatcher
from services.executor.handlers import OffsetCommitter, register_handlers
from services.executor.ledger import CommandLedger
from services.executor.mapping import CallbackTarget
from services.executor.metrics import ExecutorMetrics
from services.executor.numbers import NumberCache
from services.executor.pacing import PacedThrottle
from services.executor.pipeline import CommandPipeline
from services.executor.progress_kafka import KafkaPartitionProgress
from services.executor.service import Account, CommandService
from services.executor.settings import ExecutorSettings
from services.executor.state.kafka_lanes import KafkaLanes, fetch_entry_at, fetch_foreign_entry
from services.executor.state.partitions import ExecutorState
from services.executor.state.records import (
    INDEX_TOPIC,
    INDEX_TOPIC_CONFIG,
    LEDGER_TOPIC,
    LEDGER_TOPIC_CONFIG,
)
from services.executor.state.restore import RestoreProgress, StateReader
from services.executor.state.store import StateStore, open_store
from services.executor.state.watch_store import WatchStore
from services.executor.status_evidence import KafkaStatusEvidence
from services.exotel.accounts import ExotelAccount
from services.exotel.client import ExotelClient
from services.exotel.http import http_clients
from services.exotel.limiter import RateLimiter, partition_share

log = structlog.get_logger(__name__)


def create_app(settings: ExecutorSettings) -> Starlette:
    """The executor as an ASGI app: Kafka consumption runs in its lifespan."""
    registry = CollectorRegistry()
    metrics = ExecutorMetrics(registry)
    metrics.max_in_flight.set(settings.max_in_flight)
    readiness = Readiness()
    kafka_health = KafkaHealth()
    restore_progress = RestoreProgress()
    exotel_accounts = settings.exotel.accounts()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await _ensure_topics(settings)
        # No FastDepends: the subscriber's decoder hands the handler the message itself.
        broker = make_broker(settings.kafka, client_id="executor", apply_types=False)
        dispatcher, progress = _dispatcher(settings, metrics)
        committer = OffsetCommitter(dispatcher, settings.commit_interval_seconds)
        state = await _open_state(settings, dispatcher, committer, restore_progress)
        state_status[:] = [state.status]
        throttle = _throttle(exotel_accounts, metrics, dispatcher)
        follow_partitions = _share_follower(throttle.limiter, metrics)

        async with http_clients(
            settings.exotel, exotel_accounts, concurrency=settings.max_in_flight
        ) as http:
            clients = {
                name: ExotelClient(account, http[name], throttle=throttle, observer=metrics)
                for name, account in exotel_accounts.items()
            }
            pipeline = _pipeline(
                settings,
                clients=clients,
                metrics=metrics,
                dispatcher=dispatcher,
                state=state,
                kafka_health=kafka_health,
            )
            register_handlers(
                broker,
                settings,
                dispatcher=dispatcher,
                committer=committer,
                pipeline=pipeline,
                state=state,
                on_share=follow_partitions,
                on_fatal=_stop_now,
                progress=progress,
            )
            # Each assigned partition's state is restored (in the rebalance listener)
            # before its first command runs; start() returns after the first assignment.
            readiness.reason = "restoring the state of the assigned partitions"
            await broker.start()
            probe = await start_write_probe(
                settings.kafka, publish_with(broker), kafka_health, service="executor"
            )
            if not state.lanes.transactional:
                committer.start()  # with transactions, offsets commit with the outcomes
            call_watch = _call_watch(settings, broker, clients, metrics, state.store)
            if call_watch is not None:
                await call_watch.start()
                state_status.append(call_watch.status)
            readiness.ready, readiness.reason = True, "consuming"
            log.info(
                "executor.started", accounts=sorted(clients), max_in_flight=settings.max_in_flight
            )
            try:
                yield
            finally:
                readiness.ready, readiness.reason = False, "stopping"
                # first: nothing new starts while the watch, probe and committer stop
                dispatcher.stop_taking()
                if call_watch is not None:
                    await call_watch.stop()
                await probe.stop()
                await committer.stop()
                positions = await dispatcher.close(settings.shutdown_grace_seconds)
                await _stop_consuming(state, broker, progress, positions)

    state_status: list[Callable[[], dict[str, object]]] = []

    def ready() -> tuple[bool, dict[str, object]]:
        ok, detail = _ready(readiness, kafka_health, sorted(exotel_accounts))
        for status in (*state_status, restore_progress.status):
            detail |= status()
        return _unless_restoring(ok, detail, restore_progress)

    return Starlette(routes=probe_routes(ready, registry), lifespan=lifespan)


async def _stop_consuming(
    state: ExecutorState,
    broker: KafkaBroker,
    progress: KafkaPartitionProgress,
    positions: Mapping[tuple[str, int], int],
) -> None:
    """The last transaction of each lane (with the final positions), then the consumer."""
    await state.stop(positions)
    await broker.stop()
    await progress.stop()
    await state.close()
    log.info("executor.stopped", committed_partitions=len(positions))


def _pipeline(
    settings: ExecutorSettings,
    *,
    clients: Mapping[str, ExotelClient],
    metrics: ExecutorMetrics,
    dispatcher: KeyOrderedDispatcher,
    state: ExecutorState,
    kafka_health: KafkaHealth,
) -> CommandPipeline:
    """What every command goes through: decode, the ledger, its handler, its lane."""
    return CommandPipeline(
        _command_service(settings, clients, metrics),
        metrics,
        stopping=lambda: dispatcher.closing,
        ledger=state.ledger,
        lanes=state.lanes,
        kafka_health=kafka_health,
        owns=dispatcher.owns,
        restore_timeout_seconds=settings.restore_timeout_seconds,
    )


def _dispatcher(
    settings: ExecutorSettings, metrics: ExecutorMetrics
) -> tuple[KeyOrderedDispatcher, KafkaPartitionProgress]:
    """The dispatcher, and its view of the consumer's fetches (``register_handlers``
    plugs it into the subscriber's consumer)."""
    progress = KafkaPartitionProgress()
    dispatcher = KeyOrderedDispatcher(
        settings.max_in_flight,
        on_change=metrics.in_flight.set,
        progress=progress,
        max_parked=settings.max_rate_waiting,
    )
    return dispatcher, progress


def _throttle(
    accounts: Mapping[str, ExotelAccount],
    metrics: ExecutorMetrics,
    dispatcher: KeyOrderedDispatcher,
) -> PacedThrottle:
    """Each account's rate limit; a command waiting for its slot parks its dispatcher slot."""
    limiter = RateLimiter.from_accounts(accounts, on_wait=metrics.limiter_waited)
    return PacedThrottle(limiter, dispatcher.parked_while)


def _unless_restoring(
    ok: bool, detail: dict[str, object], progress: RestoreProgress
) -> tuple[bool, dict[str, object]]:
    """Commands of a partition wait until its state is restored: not ready before the
    first assignment's restore, nor while a rebalance restores."""
    if ok and (progress.active or progress.restores == 0):
        detail["reason"] = "restoring the state of the assigned partitions"
        return False, detail
    return ok, detail


def _share_follower(limiter: RateLimiter, metrics: ExecutorMetrics) -> Callable[[int, int], None]:
    """Each account's limit is shared by partitions owned (recomputed on every rebalance)."""

    def follow_partitions(owned: int, total: int) -> None:
        limiter.set_share(partition_share(owned, total))
        metrics.rate_share.set(limiter.share)

    return follow_partitions


async def _ensure_topics(settings: ExecutorSettings) -> None:
    await ensure_topics(
        settings.kafka,
        (*ALL_TOPICS, LEDGER_TOPIC, INDEX_TOPIC, HEALTH_TOPIC),
        configs={
            LEDGER_TOPIC: LEDGER_TOPIC_CONFIG,
            INDEX_TOPIC: INDEX_TOPIC_CONFIG,
            HEALTH_TOPIC: HEALTH_TOPIC_CONFIG,
        },
    )


async def _open_state(
    settings: ExecutorSettings,
    dispatcher: KeyOrderedDispatcher,
    committer: OffsetCommitter,
    progress: RestoreProgress,
) -> ExecutorState:
    """The local store, the partitions' write lanes, the state reader and the ledger."""
    store = open_store(settings.state_dir or Path(tempfile.mkdtemp(prefix="voicebus-state-")))
    cluster = await cluster_id(settings.kafka)
    if store.adopt(cluster):
        log.warning("state.discarded", reason="the store came from another Kafka cluster")
    transactional = settings.uses_transactions

    def positions_of(partition: int) -> Callable[[], dict[tuple[str, int], int]]:
        return lambda: dispatcher.positions([(t, partition) for t in COMMAND_TOPICS])

    lanes = KafkaLanes(
        settings.kafka,
        group_id=settings.group_id,
        transactional=transactional,
        positions_of=positions_of,
    )
    await lanes.start()
    reader = StateReader(
        settings.kafka,
        store,
        exact_end_offsets=transactional,
        write_barrier=lanes.write_barrier,
        timeout_seconds=settings.restore_timeout_seconds,
        progress=progress,
    )
    await reader.start(
        await topic_partitions(settings.kafka, INDEX_TOPIC),
        await topic_partitions(settings.kafka, LEDGER_TOPIC),
    )

    async def fetch(partition: int, key: str, at: float) -> bytes | None:
        return await fetch_foreign_entry(
            settings.kafka, read_committed=transactional, partition=partition, key=key, at=at
        )

    async def read_back(partition: int, offset: int, key: str, at: float) -> bytes | None:
        return await fetch_entry_at(
            settings.kafka,
            read_committed=transactional,
            partition=partition,
            offset=offset,
            key=key,
            at=at,
        )

    ledger = CommandLedger(store, lanes, fetch_foreign=fetch, fetch_at=read_back)
    return ExecutorState(
        lanes, reader, ledger, committer.commit, store, temporary=settings.state_dir is None
    )


def _stop_now(exc: BaseException) -> None:
    """A partition's state could not be acquired: stop rather than run without it (the
    orchestrator restarts the executor; its commands stay uncommitted meanwhile)."""
    log.critical("executor.fatal", error=repr(exc))
    logging.shutdown()
    os._exit(3)


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
    settings: ExecutorSettings, clients: Mapping[str, ExotelClient], metrics: ExecutorMetrics
) -> CommandService:
    """The service layer; each command's intents go to its partition's ledger (the
    pipeline passes ``ledger.journal(partition)``)."""
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
        reconcile_window_seconds=settings.reconcile_window_seconds,
        reconcile_poll_seconds=settings.reconcile_poll_seconds,
        numbers=NumberCache(settings.number_cache_hours * 3600, settings.number_cache_max),
        backfill_page_size=settings.backfill_page_size,
        statuses=KafkaStatusEvidence(settings.kafka),
    )


def _call_watch(
    settings: ExecutorSettings,
    broker: KafkaBroker,
    clients: Mapping[str, ExotelClient],
    metrics: ExecutorMetrics,
    store: StateStore,
) -> CallWatchRunner | None:
    """Missing-callback recovery and the finalisation of finished calls
    (services/executor/README.md): both ask Exotel through the same ExotelClient per
    account, so the shared rate limiter's GET budget applies. Its state per partition
    lives in the executor's local store, beside the ledger's."""
    if not settings.call_watch_enabled and not settings.call_details_enabled:
        return None

    async def publish(value: bytes, topic: str, key: bytes, headers: dict[str, str]) -> None:
        await broker.publish(value, topic=topic, key=key, headers=headers)

    watch_store = WatchStore(store, WATCHED_TOPICS)
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
            ),
            history=watch_store,
        ),
        store=watch_store,
        exact_end_offsets=settings.uses_transactions,
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
