"""The shared ``httpx.AsyncClient`` used to talk to Exotel."""

from __future__ import annotations

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
    """Requests spread over several connection pools of the same settings, each filled
    before the next is used.

    httpcore's pool (1.0.x) does, on every request added and every response closed, a
    pass over all its connections (a socket readability check each) and, for each one,
    counts all of them again: work growing with the square of its connections. 64
    requests in flight on one pool spent more CPU there than on the requests themselves
    (bench/RESULTS.md, "The executor's CPU per command"). Here a request goes to the
    first pool with fewer than ``per_shard`` requests in flight (else the least busy), so
    64 requests in flight are eight pools of eight connections, while an account sending
    one request at a time keeps using the first pool's one connection (no extra TLS
    handshakes). A request counts until its response is closed."""

    def __init__(self, shards: Sequence[httpx.AsyncBaseTransport], *, per_shard: int) -> None:
        if not shards:
            raise ValueError("a sharded transport needs at least one shard")
        self.shards = tuple(shards)
        self.per_shard = per_shard
        self.in_flight = [0] * len(self.shards)

    def _pick(self) -> int:
        in_flight = self.in_flight
        for index, count in enumerate(in_flight):
            if count < self.per_shard:
                return index
        return in_flight.index(min(in_flight))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._pick()
        self.in_flight[index] += 1
        try:
            response = await self.shards[index].handle_async_request(request)
        except BaseException:
            self.in_flight[index] -= 1
            raise
        response.stream = _Counted(response.stream, self.in_flight, index)
        return response

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


class _Counted(httpx.AsyncByteStream):
    """A response body whose request stops counting for its pool once it is closed."""

    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, counts: list[int], index: int
    ) -> None:
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("an async transport answers with an async stream")
        self._stream = stream
        self._counts = counts
        self._index = index
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._open:
                self._open = False
                self._counts[self._index] -= 1


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
            [httpx.AsyncHTTPTransport(verify=tls, limits=shard_limits) for _ in range(shards)],
            per_shard=CONNECTIONS_PER_SHARD,
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
    """One client per account, closed together.

    httpcore's pool does work on every request and response that grows with the square of
    its connections (it checks every connection, and counts them all for each one): one
    pool for 50 accounts held ~64 connections and spent a fifth of the executor's CPU
    there (bench/RESULTS.md, "Many accounts"). An account's own client stays as small as
    its own concurrency, and a busy account's connections are spread over pools of
    :data:`CONNECTIONS_PER_SHARD` (:class:`ShardedTransport`)."""
    async with AsyncExitStack() as stack:
        clients = {}
        for account in accounts:
            client = make_http_client(settings, concurrency=concurrency)
            clients[account] = await stack.enter_async_context(client)
        yield clients
