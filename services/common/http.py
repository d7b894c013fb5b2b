"""HTTP serving shared by the services: uvicorn, health probes, /metrics."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp


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

    metrics_app: ASGIApp = make_asgi_app(registry)
    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Mount("/metrics", app=metrics_app),
    ]


def serve(app: ASGIApp, *, host: str, port: int, graceful_seconds: float = 30.0) -> None:
    """Run ``app`` until SIGTERM/SIGINT; the app's lifespan shutdown does the draining."""
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
