"""The ingress benchmark's baseline: the least a callback endpoint on Kafka can do.

``python -m bench.ingress_baseline`` (``HTTP_HOST``, ``HTTP_PORT``,
``KAFKA_BOOTSTRAP_SERVERS``, ``BASELINE_TOPIC``): starlette on uvicorn (its defaults: the
event loop and HTTP parser it picks, one process), ``await request.form()``, the form as
JSON to Kafka with aiokafka's ``send_and_wait`` (acks=all; key: the CallSid), then 200.
No token, signature, parsing into a fact, spool, ordering, metrics or logs.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator

import uvicorn
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def create_app(bootstrap: str, topic: str) -> Starlette:
    producers: list[AIOKafkaProducer] = []  # made in the lifespan (aiokafka wants a loop)

    async def callback(request: Request) -> Response:
        form = await request.form()
        payload = {key: str(value) for key, value in form.multi_items()}
        await producers[0].send_and_wait(
            topic, json.dumps(payload).encode(), key=payload.get("CallSid", "").encode()
        )
        return Response(status_code=200)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        producers.append(producer)
        try:
            yield
        finally:
            await producer.stop()

    routes = [
        Route("/callbacks", callback, methods=["POST"]),
        Route("/readyz", healthz),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    env = os.environ
    app = create_app(env["KAFKA_BOOTSTRAP_SERVERS"], env["BASELINE_TOPIC"])
    uvicorn.run(
        app,
        host=env.get("HTTP_HOST", "127.0.0.1"),
        port=int(env["HTTP_PORT"]),
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
