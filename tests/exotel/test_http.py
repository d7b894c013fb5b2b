"""The shared httpx client: TLS, timeouts, pool size, User-Agent, no redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.exotel import ExotelSettings, make_http_client
from services.exotel.http import (
    CONNECTIONS_PER_SHARD,
    MAX_CONNECTIONS,
    USER_AGENT,
    ShardedTransport,
    http_clients,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXOTEL_TIMEOUT_SECONDS", "EXOTEL_VERIFY_TLS", "EXOTEL_ACCOUNT_SID"):
        monkeypatch.delenv(name, raising=False)


async def test_the_client_identifies_itself_and_bounds_its_timeouts() -> None:
    async with make_http_client(ExotelSettings(timeout_seconds=7)) as http:
        assert http.headers["user-agent"] == USER_AGENT == "voicebus/0.1"
        assert http.timeout.read == 7
        assert http.timeout.write == 7
        assert http.timeout.connect == 5
        assert http.timeout.pool == 7
        assert http.follow_redirects is False


async def test_a_short_timeout_also_shortens_connecting() -> None:
    async with make_http_client(ExotelSettings(timeout_seconds=2)) as http:
        assert http.timeout.connect == 2


def pools(http: httpx.AsyncClient) -> list[Any]:
    transport = http._transport
    assert isinstance(transport, ShardedTransport)
    return [shard._pool for shard in transport.shards]  # type: ignore[attr-defined]


async def test_the_pool_is_sized_for_about_two_hundred_requests_in_flight() -> None:
    assert MAX_CONNECTIONS >= 200
    async with make_http_client(ExotelSettings()) as http:
        assert sum(pool._max_connections for pool in pools(http)) >= MAX_CONNECTIONS


async def test_connections_are_spread_over_small_pools_kept_alive_for_the_concurrency() -> None:
    async with make_http_client(ExotelSettings(), concurrency=64) as http:
        shards = pools(http)
        assert len(shards) == 64 // CONNECTIONS_PER_SHARD
        assert {pool._max_keepalive_connections for pool in shards} == {CONNECTIONS_PER_SHARD}


class Body(httpx.AsyncByteStream):
    """A body read from the network (a ``content=`` one counts as read already)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"{}"


def recording(shard: int, seen: list[int]) -> httpx.MockTransport:
    def answer(_request: httpx.Request) -> httpx.Response:
        seen.append(shard)
        return httpx.Response(200, stream=Body())

    return httpx.MockTransport(answer)


async def test_a_pool_takes_requests_until_it_is_full_then_the_next_one() -> None:
    seen: list[int] = []
    transport = ShardedTransport([recording(n, seen) for n in range(3)], per_shard=2)
    async with httpx.AsyncClient(transport=transport) as http:
        for _ in range(4):  # one at a time: the first pool's connection each time
            assert (await http.get("https://api.exotel.com/")).status_code == 200
        assert seen == [0, 0, 0, 0]
        assert transport.in_flight == [0, 0, 0], "a request counts until its response closes"
        open_ = [
            await http.send(http.build_request("GET", "https://api.exotel.com/"), stream=True)
            for _ in range(7)
        ]
        assert seen[4:] == [0, 0, 1, 1, 2, 2, 0], "full pools: the least busy one"
        assert transport.in_flight == [3, 2, 2]
        await open_[2].aclose()  # one of pool 1's
        await http.get("https://api.exotel.com/")
        assert seen[-1] == 1
        for response in open_:
            await response.aclose()
    assert transport.in_flight == [0, 0, 0]


async def test_a_failed_request_stops_counting() -> None:
    def fail(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    transport = ShardedTransport([httpx.MockTransport(fail)], per_shard=2)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("https://api.exotel.com/")
    assert transport.in_flight == [0]


async def test_tls_is_verified_unless_explicitly_disabled() -> None:
    async with make_http_client(ExotelSettings()) as http:
        modes = {pool._ssl_context.verify_mode.name for pool in pools(http)}
        assert modes == {"CERT_REQUIRED"}
    async with make_http_client(ExotelSettings(verify_tls=False)) as http:
        modes = {pool._ssl_context.verify_mode.name for pool in pools(http)}
        assert modes == {"CERT_NONE"}


async def test_a_transport_can_be_injected_for_tests() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    transport = httpx.MockTransport(handler)
    async with make_http_client(ExotelSettings(), transport=transport) as http:
        response = await http.get("https://api.exotel.com/")
    assert response.status_code == 204
    assert seen[0].headers["user-agent"] == "voicebus/0.1"


async def test_each_account_gets_its_own_client_and_all_are_closed_together() -> None:
    async with http_clients(ExotelSettings(), ["default", "sales"]) as clients:
        assert set(clients) == {"default", "sales"}
        assert clients["default"] is not clients["sales"], "one connection pool per account"
    assert all(client.is_closed for client in clients.values())
