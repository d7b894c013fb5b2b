"""Addresses that misbehave on purpose: one that accepts connections and never answers, and a
TLS server presenting a certificate of the test's choosing (no Kafka behind either)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path


@contextlib.contextmanager
def silent_address() -> Iterator[str]:
    """``host:port`` of a socket that listens but never reads or answers: the kernel
    completes every TCP handshake, so a client waits for a reply that never comes (a
    firewall that swallows packets, a hung broker)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@contextlib.asynccontextmanager
async def tls_address(keystore: Path) -> AsyncIterator[str]:
    """``host:port`` of a TLS server presenting ``keystore`` (PEM key and chain); it holds
    each connection open after the handshake and never answers."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(keystore))
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=context)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()
