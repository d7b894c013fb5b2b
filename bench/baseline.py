"""The overhead benchmark's baseline: a minimal hand-written consume -> HTTP -> produce loop.

``python -m bench.baseline`` (configured by environment, like the executor) consumes
``BASELINE_COMMAND_TOPIC``, POSTs each command to the sandbox's v1 connect with basic auth,
and produces a small result JSON to ``BASELINE_RESULT_TOPIC`` (acks=all, awaited). At most
``BASELINE_MAX_IN_FLIGHT`` commands run at once (a semaphore: the same bound the executor
gets). No validation, ordering, retries, rate limits, metrics, logs or commit discipline
(aiokafka auto-commit): the floor any executor design pays on this machine. Its HTTP pool
keeps ``bound`` connections alive, so no request waits for a new connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError


async def main() -> None:
    env = os.environ
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    base = env["EXOTEL_BASE_URL"]
    sid = env["EXOTEL_ACCOUNT_SID"]
    auth = (env["EXOTEL_API_KEY"], env["EXOTEL_API_TOKEN"])
    bound = int(env.get("BASELINE_MAX_IN_FLIGHT", "64"))
    url = f"{base}/v1/Accounts/{sid}/Calls/connect.json"

    consumer = AIOKafkaConsumer(
        env["BASELINE_COMMAND_TOPIC"],
        bootstrap_servers=bootstrap,
        group_id=env.get("BASELINE_GROUP_ID", "bench-baseline"),
        auto_offset_reset="earliest",
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, enable_idempotence=False
    )
    result_topic = env["BASELINE_RESULT_TOPIC"]
    slots = asyncio.Semaphore(bound)
    tasks: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async with httpx.AsyncClient(
        timeout=10,
        limits=httpx.Limits(
            max_connections=int(env.get("BASELINE_MAX_CONNECTIONS", "200")),
            max_keepalive_connections=int(env.get("BASELINE_KEEPALIVE", "50")),
        ),
    ) as http:

        async def handle(value: bytes) -> None:
            try:
                command = json.loads(value)
                form = {
                    "From": command["from"],
                    "To": command["to"],
                    "CallerId": command["caller_id"],
                }
                response = await http.post(url, data=form, auth=auth)
                call_sid = response.json()["Call"]["Sid"] if response.is_success else None
                result = {
                    "command_id": command["command_id"],
                    "outcome": "accepted" if call_sid else "failed",
                    "call_sid": call_sid,
                    "completed_at": time.time(),
                }
                for attempt in range(1, 6):  # a topic just created may move its leader
                    try:
                        await producer.send_and_wait(
                            result_topic,
                            json.dumps(result).encode(),
                            key=(call_sid or command["command_id"]).encode(),
                        )
                        break
                    except KafkaError:
                        await asyncio.sleep(0.2 * attempt)
            finally:
                slots.release()

        await consumer.start()
        await producer.start()
        print("baseline.started", flush=True)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    for record in records:
                        await slots.acquire()
                        task = asyncio.create_task(handle(record.value or b"{}"))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
            await producer.stop()


if __name__ == "__main__":
    asyncio.run(main())
