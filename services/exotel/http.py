"""The shared ``httpx.AsyncClient`` used to talk to Exotel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from services.exotel.accounts import ExotelSettings

__all__ = ["MAX_CONNECTIONS", "USER_AGENT", "http_clients", "make_http_client"]

USER_AGENT = "voicebus/0.1"
#: Sized for ~200 requests in flight (Exotel's voice limit is 200/minute per account, and
#: several accounts share one client); requests beyond this wait for the pool (PoolTimeout).
MAX_CONNECTIONS = 200
MAX_KEEPALIVE_CONNECTIONS = 50
CONNECT_TIMEOUT_SECONDS = 5.0


def make_http_client(
    settings: ExotelSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    concurrency: int | None = None,
) -> httpx.AsyncClient:
    """An ``AsyncClient`` for Exotel: TLS verified (unless EXOTEL_VERIFY_TLS=false),
    bounded timeouts and pool, no redirects (they could carry credentials elsewhere).

    Credentials are not set here: :class:`~services.exotel.client.ExotelClient` adds basic
    auth per request, so one client can serve several accounts. Close it with ``aclose()``.
    """
    timeout = httpx.Timeout(
        settings.timeout_seconds,
        connect=min(CONNECT_TIMEOUT_SECONDS, settings.timeout_seconds),
        pool=settings.timeout_seconds,
    )
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS,
        # Keep as many connections alive as requests can be in flight, so a busy executor
        # does not close and reopen connections between requests.
        max_keepalive_connections=max(
            MAX_KEEPALIVE_CONNECTIONS, min(concurrency or 0, MAX_CONNECTIONS)
        ),
        keepalive_expiry=30.0,
    )
    return httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        verify=settings.verify_tls,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        transport=transport,
    )


@asynccontextmanager
async def http_clients(
    settings: ExotelSettings, accounts: Iterable[str], *, concurrency: int | None = None
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One client (one connection pool) per account, closed together.

    httpcore's pool does work on every request and response that grows with the square of
    its connections (it checks every connection, and counts them all for each one): one
    pool for 50 accounts held ~64 connections and spent a fifth of the executor's CPU
    there (bench/RESULTS.md, "Many accounts"). An account's own pool stays as small as its
    own concurrency."""
    async with AsyncExitStack() as stack:
        clients = {}
        for account in accounts:
            client = make_http_client(settings, concurrency=concurrency)
            clients[account] = await stack.enter_async_context(client)
        yield clients
