"""The shared httpx client: TLS, timeouts, pool size, User-Agent, no redirects."""

from __future__ import annotations

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


async def test_requests_go_to_the_pools_in_turn() -> None:
    seen: list[int] = []

    def handler(shard: int) -> httpx.MockTransport:
        def answer(_request: httpx.Request) -> httpx.Response:
            seen.append(shard)
            return httpx.Response(204)

        return httpx.MockTransport(answer)

    transport = ShardedTransport([handler(0), handler(1), handler(2)])
    async with httpx.AsyncClient(transport=transport) as http:
        for _ in range(6):
            assert (await http.get("https://api.exotel.com/")).status_code == 204
    assert seen == [0, 1, 2, 0, 1, 2]


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
