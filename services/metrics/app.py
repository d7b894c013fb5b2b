"""Composition root of the metrics service: one broker, one recorder, one lag monitor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from contracts.topics import ALL_TOPICS
from services.common.http import Readiness, probe_routes
from services.common.kafka import ensure_topics, make_broker
from services.metrics.handlers import METRICS_TOPICS, PositionCommitter, register_handlers
from services.metrics.lag import LagMonitor, watched_groups
from services.metrics.metrics import ServiceMetrics
from services.metrics.recorder import FactRecorder
from services.metrics.settings import MetricsSettings

log = structlog.get_logger(__name__)


def create_app(settings: MetricsSettings) -> Starlette:
    """The metrics service as an ASGI app: consumption and lag checks run in its lifespan."""
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    recorder = FactRecorder(metrics.facts, settings.limits())
    readiness = Readiness()
    groups = watched_groups(
        own_group=settings.group_id,
        own_topics=METRICS_TOPICS,
        executor_group=settings.executor_group_id,
        extra=settings.extra_lag_groups(),
    )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await ensure_topics(settings.kafka, ALL_TOPICS)
        broker = make_broker(settings.kafka, client_id="metrics")
        committer = PositionCommitter(settings.commit_interval_seconds, on_tick=recorder.expire)
        register_handlers(broker, settings, recorder=recorder, committer=committer)
        lag = LagMonitor(settings.kafka, groups, metrics.lag, settings.lag_interval_seconds)
        await broker.start()
        committer.start()
        lag.start()
        readiness.ready, readiness.reason = True, "consuming"
        metrics.ready.set(1)
        log.info("metrics.started", group=settings.group_id, lag_groups=[g.group for g in groups])
        try:
            yield
        finally:
            readiness.ready, readiness.reason = False, "stopping"
            metrics.ready.set(0)
            await lag.stop()
            await committer.stop()
            await broker.stop()
            log.info("metrics.stopped")

    def ready() -> tuple[bool, dict[str, object]]:
        return readiness.ready, {"reason": readiness.reason, "group": settings.group_id}

    return Starlette(routes=probe_routes(ready, registry), lifespan=lifespan)
