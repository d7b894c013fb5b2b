"""The shared ``httpx.AsyncClient`` used to talk to Exotel."""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType

import httpx

from services.exotel.accounts import ExotelSettings

__all__ = [
    "MAX_CONNECTIONS",
    "USER_AGENT",
    "ShardedTransport",
    "http_clients",
    "make_http_client",
]

USER_AGENT = "voicebus/0.1"
#: Sized for ~200 requests in flight (Exotel's voice limit is 200/minute per account, and
#: several accounts share one client); requests beyond this wait for the pool (PoolTimeout).
MAX_CONNECTIONS = 200
MAX_KEEPALIVE_CONNECTIONS = 50
CONNECT_TIMEOUT_SECONDS = 5.0
#: Connections per pool a client's requests are spread over (:class:`ShardedTransport`).
CONNECTIONS_PER_SHARD = 8


class ShardedTransport(httpx.AsyncBaseTransport):
    """Requests spread, in turn, over several connection pools of the same settings.

    httpcore's pool (1.0.x) does, on every request added and every response closed, a
    pass over all its connections (a socket readability check each) and, for each one,
    counts all of them again: work growing with the square of its connections. 64
    requests in flight on one pool spent more CPU there than on the requests themselves
    (bench/RESULTS.md, "The executor's CPU per command"). Eight pools of eight
    connections do an eighth of the requests each over an eighth of the connections."""

    def __init__(self, shards: Sequence[httpx.AsyncBaseTransport]) -> None:
        if not shards:
            raise ValueError("a sharded transport needs at least one shard")
        self.shards = tuple(shards)
        self._next = itertools.cycle(self.shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def __aenter__(self) -> ShardedTransport:
        for shard in self.shards:
            await shard.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


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

    The connections (as many kept alive as ``concurrency`` requests need) are spread over
    pools of :data:`CONNECTIONS_PER_SHARD` (:class:`ShardedTransport`), unless
    ``transport`` is given.
    """
    timeout = httpx.Timeout(
        settings.timeout_seconds,
        connect=min(CONNECT_TIMEOUT_SECONDS, settings.timeout_seconds),
        pool=settings.timeout_seconds,
    )
    # Keep as many connections alive as requests can be in flight, so a busy executor
    # does not close and reopen connections between requests.
    keepalive = max(MAX_KEEPALIVE_CONNECTIONS, min(concurrency or 0, MAX_CONNECTIONS))
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=keepalive, keepalive_expiry=30.0
    )
    if transport is None:
        shards = math.ceil(keepalive / CONNECTIONS_PER_SHARD)
        shard_limits = httpx.Limits(
            max_connections=math.ceil(MAX_CONNECTIONS / shards),
            max_keepalive_connections=math.ceil(keepalive / shards),
            keepalive_expiry=30.0,
        )
        tls = httpx.create_ssl_context(verify=settings.verify_tls)  # one for every shard
        transport = ShardedTransport(
            [httpx.AsyncHTTPTransport(verify=tls, limits=shard_limits) for _ in range(shards)]
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
