"""Fixtures for the Exotel client's unit tests: accounts, sample payloads, a client on an
``httpx.MockTransport``, and recording throttle/observer doubles. No network."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.exotel import ExotelAccount, ExotelClient
from services.exotel.accounts import ApiFamily

DATA = Path(__file__).resolve().parents[1] / "data" / "exotel"

API_KEY = "key-7f3a9c1e5b2d4f60"
API_TOKEN = "token-d41d8cd98f00b204e980"
SID = "voicebus1"

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def sample(name: str) -> bytes:
    """A sample payload from tests/data/exotel/."""
    return (DATA / name).read_bytes()


def make_account(**overrides: Any) -> ExotelAccount:
    values: dict[str, Any] = {
        "name": "default",
        "account_sid": SID,
        "api_key": API_KEY,
        "api_token": API_TOKEN,
    }
    values.update(overrides)
    return ExotelAccount.model_validate(values)


@dataclass
class RecordingThrottle:
    acquired: list[tuple[str, ApiFamily]] = field(default_factory=list)
    penalised: list[tuple[str, ApiFamily, float | None]] = field(default_factory=list)

    async def acquire(self, account: str, family: ApiFamily) -> None:
        self.acquired.append((account, family))

    def penalise(self, account: str, family: ApiFamily, retry_after: float | None) -> None:
        self.penalised.append((account, family, retry_after))


@dataclass
class RecordingObserver:
    calls: list[dict[str, Any]] = field(default_factory=list)

    def observe(
        self, *, account: str, endpoint: str, method: str, status: int | None, seconds: float
    ) -> None:
        self.calls.append(
            {
                "account": account,
                "endpoint": endpoint,
                "method": method,
                "status": status,
                "seconds": seconds,
            }
        )


@dataclass
class Exchange:
    """What the fake Exotel saw, and what it answers next."""

    requests: list[httpx.Request] = field(default_factory=list)
    handler: Handler | None = None

    def reply(
        self,
        status: int = 200,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        content = body.encode() if isinstance(body, str) else body

        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(status, content=content, headers=headers)

        self.handler = handler

    @property
    def last(self) -> httpx.Request:
        assert self.requests, "no request was sent"
        return self.requests[-1]


@dataclass
class Harness:
    client: ExotelClient
    exotel: Exchange
    throttle: RecordingThrottle
    observer: RecordingObserver


ClientFactory = Callable[..., Harness]


@pytest.fixture
async def http_factory() -> AsyncIterator[Callable[[Exchange], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def factory(exchange: Exchange) -> httpx.AsyncClient:
        async def handle(request: httpx.Request) -> httpx.Response:
            exchange.requests.append(request)
            assert exchange.handler is not None, "the test did not say what Exotel answers"
            result = exchange.handler(request)
            if isinstance(result, httpx.Response):
                return result
            return await result

        client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()


@pytest.fixture
def harness_factory(
    http_factory: Callable[[Exchange], httpx.AsyncClient],
) -> ClientFactory:
    def factory(**account_overrides: Any) -> Harness:
        exchange = Exchange()
        throttle = RecordingThrottle()
        observer = RecordingObserver()
        client = ExotelClient(
            make_account(**account_overrides),
            http_factory(exchange),
            throttle=throttle,
            observer=observer,
        )
        return Harness(client, exchange, throttle, observer)

    return factory


@pytest.fixture
def harness(harness_factory: ClientFactory) -> Harness:
    return harness_factory()
