"""The sandbox's ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from services.sandbox import admin
from services.sandbox.context import Sandbox
from services.sandbox.pipeline import handle_api
from services.sandbox.settings import SandboxSettings

API_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def create_app(settings: SandboxSettings | None = None) -> Starlette:
    """A Starlette app serving Exotel's paths and the ``/_sandbox`` admin API."""
    sandbox = Sandbox.build(settings or SandboxSettings())

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.close()

    app = Starlette(
        routes=[*admin.ROUTES, Route("/{path:path}", handle_api, methods=API_METHODS)],
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app
