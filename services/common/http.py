"""HTTP serving shared by the services: uvicorn, health probes, /metrics."""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

log = structlog.get_logger(__name__)


@dataclass
class Readiness:
    """Whether a service is ready, and why not (shown by ``/readyz``)."""

    ready: bool = False
    reason: str = "starting"


def probe_routes(
    ready: Callable[[], tuple[bool, dict[str, object]]], registry: CollectorRegistry
) -> list[BaseRoute]:
    """``/healthz`` (the process answers), ``/readyz`` (``ready()`` says so), ``/metrics``."""

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        ok, detail = ready()
        return JSONResponse(
            {"status": "ready" if ok else "not ready", **detail}, status_code=200 if ok else 503
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]


def freeze_what_lives_forever() -> None:
    """Move everything made so far (modules, settings, the app) out of the cyclic garbage
    collector's view: it lives as long as the process. Without it every full collection
    walks all of it: in the ingress 45-70 ms with the loop stopped, about once a second at
    2,000 callbacks/s (objects of the callbacks in flight get promoted and trigger it),
    which was its p99 (bench/RESULTS.md). Collected first, so no garbage is kept; cycles
    made later are collected as before."""
    gc.collect()
    gc.freeze()


def serve(app: ASGIApp, *, host: str, port: int, graceful_seconds: float = 30.0) -> None:
    """Run ``app`` until SIGTERM/SIGINT; the app's lifespan shutdown does the draining.

    uvicorn handles the signal (graceful shutdown) and then re-raises it to the handler
    installed before it; SIGTERM is how a service is meant to stop, so that handler only
    notes it and the process exits 0.
    """

    def stopped_by(signum: int, _frame: FrameType | None) -> None:
        log.info("service.signal", signal=signal.Signals(signum).name)

    freeze_what_lives_forever()
    signal.signal(signal.SIGTERM, stopped_by)
    signal.signal(signal.SIGINT, stopped_by)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(graceful_seconds),
        server_header=False,
    )
    uvicorn.Server(config).run()
