"""``python -m bench.ingress_cpu [callbacks] [--profile]``: the ingress's CPU per callback
in process, without a broker, a socket or wrk.

The ingress's ASGI app as :func:`services.ingress.app.create_app` builds it, logging as
deployed (``configure_logging``, JSON at INFO, written to ``/dev/null`` here), driven
directly with ASGI messages: each callback the wrk benchmark's request (an Exotel v1
terminal callback as multipart/form-data, a new CallSid each, the signed callback URL).
The outlet serialises each fact into its Kafka record (:func:`fact_record`) and returns:
what is left out is the socket, HTTP parsing (httptools) and the producer. Prints the
best of 5 rounds in µs per callback (``--profile``: cProfile's top functions instead).
A tool for comparing one change with the next on a busy machine; the figures that count
come from ``python -m bench ingress``.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import time
from collections.abc import MutableMapping
from typing import Any

from bench.harness import CALLBACK_TOKEN, SIGNING_SECRET
from bench.ingress import callback_path
from contracts.status import CallStatusEvent
from services.common.logging import configure_logging
from services.ingress.app import create_app
from services.ingress.settings import IngressSettings
from services.ingress.sinks import DeadLetter, fact_record

BOUNDARY = "exotelbench7MA4YWxkTrZu0gW"


def body(sid: str, counter: int) -> bytes:
    """The body bench/ingress.lua sends."""
    fields = [
        ("CallSid", sid),
        ("EventType", "terminal"),
        ("From", "+919413740001"),
        ("To", "+918867990001"),
        ("PhoneNumberSid", "01130830001"),
        ("Status", "completed"),
        ("Direction", "outbound-api"),
        ("DateCreated", "2019-04-08 03:10:55"),
        ("DateUpdated", "2019-04-08 03:11:28"),
        ("StartTime", "2019-04-08 03:10:55"),
        ("EndTime", "2019-04-08 03:11:30"),
        ("RecordingUrl", ""),
        ("ConversationDuration", str(10_000_000 + counter)),
        ("Legs[0][Status]", "completed"),
        ("Legs[0][OnCallDuration]", "41"),
        ("Legs[1][Status]", "completed"),
        ("Legs[1][OnCallDuration]", "32"),
    ]
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields
    ]
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


class SerialisingOutlet:
    """Facts become their Kafka record (the JSON value and headers), then are dropped."""

    def __init__(self) -> None:
        self.facts = self
        self.dead_letters = _NoDeadLetters()
        self.ready = True
        self.count = 0

    async def put(self, event: CallStatusEvent) -> None:
        fact_record(event)
        self.count += 1

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def status(self) -> dict[str, object]:
        return {}


class _NoDeadLetters:
    async def put(self, letter: DeadLetter) -> None:
        raise AssertionError(f"a bench callback was dead-lettered: {letter.reason}")


async def run(callbacks: int, *, profile: bool) -> None:
    settings = IngressSettings.model_validate(
        {"callback_token": CALLBACK_TOKEN, "callback_signing_secret": SIGNING_SECRET}
    )
    outlet = SerialisingOutlet()
    app = create_app(settings, outlet=outlet)
    path, _, query = callback_path().partition("?")
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
    ]
    lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan_out: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, lifespan_in.get, lifespan_out.put)
    )
    await lifespan_in.put({"type": "lifespan.startup"})
    await lifespan_out.get()
    while not app.state.readiness.accepting:
        await asyncio.sleep(0.001)

    async def one(counter: int) -> None:
        payload = body(f"cpu{counter}", counter)
        sent: list[MutableMapping[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.Event().wait()
            delivered = True
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [*headers, (b"content-length", str(len(payload)).encode())],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)
        if sent[0].get("status") != 200:
            raise AssertionError(f"callback answered {sent}")

    for counter in range(200):  # warm up
        await one(counter)
    rounds: list[float] = []
    profiler = cProfile.Profile() if profile else None
    for _ in range(1 if profile else 5):
        if profiler:
            profiler.enable()
        started = time.process_time()
        for counter in range(callbacks):
            await one(counter)
        rounds.append((time.process_time() - started) / callbacks * 1e6)
        if profiler:
            profiler.disable()
    await lifespan_in.put({"type": "lifespan.shutdown"})
    await lifespan
    if profiler:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats(
            os.environ.get("SORT", "tottime")
        ).print_stats(int(os.environ.get("TOP", "35")))
    print(f"{min(rounds):.0f} µs CPU per callback (best of {len(rounds)}; rounds {rounds})")


def main() -> None:
    callbacks = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 2000
    # the log lines go where they cost what they cost, but not to the terminal
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    configure_logging("ingress", level="INFO", json=True)
    asyncio.run(run(callbacks, profile="--profile" in sys.argv))


if __name__ == "__main__":
    main()
