"""The ledger's Kafka side: append acknowledged entries, read them all back, follow.

Catching up does not trust end offsets (the embedded broker reports them wrongly): at
start the replica writes a barrier record to every ledger partition and reads each
partition until it meets its own barrier. Everything before it has then been applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from services.common.kafka import topic_partitions
from services.common.kafka_security import security_options
from services.common.settings import KafkaSettings
from services.executor.ledger import CommandLedger, LedgerEntry

log = structlog.get_logger(__name__)

LEDGER_TOPIC = "voicebus.executor.ledger"
LEDGER_TOPIC_CONFIG = {"cleanup.policy": "compact", "retention.ms": str(7 * 24 * 3600 * 1000)}
BARRIER_KEY = b"__barrier__"


class KafkaLedgerLog:
    def __init__(self, broker: KafkaBroker, settings: KafkaSettings, ledger: CommandLedger):
        self._broker = broker
        self._settings = settings
        self._ledger = ledger
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def append(self, entry: LedgerEntry) -> None:
        await self._broker.publish(
            entry.model_dump_json().encode(), topic=LEDGER_TOPIC, key=entry.key.encode()
        )

    async def start(self, catch_up_seconds: float = 60.0) -> None:
        """Read the whole ledger (until our barriers), then follow it in the background."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            client_id=f"{self._settings.client_id}-ledger",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **security_options(self._settings),
        )
        await consumer.start()
        self._consumer = consumer
        partitions = await topic_partitions(self._settings, LEDGER_TOPIC)
        tps = [TopicPartition(LEDGER_TOPIC, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        barrier = uuid.uuid4().hex.encode()
        for partition in partitions:
            await self._broker.publish(
                barrier, topic=LEDGER_TOPIC, key=BARRIER_KEY, partition=partition
            )
        waiting = set(partitions)
        async with asyncio.timeout(catch_up_seconds):
            while waiting:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        if record.key == BARRIER_KEY:
                            if record.value == barrier:
                                waiting.discard(tp.partition)
                            continue
                        self._apply(record.value)
        log.info("ledger.loaded", entries=len(self._ledger), partitions=len(partitions))
        self._task = asyncio.create_task(self._follow(), name="ledger-follower")

    async def _follow(self) -> None:
        if self._consumer is None:
            raise RuntimeError("the ledger's consumer is not started")
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep following whatever failed
                log.warning("ledger.follow_failed", error=repr(exc))
                await asyncio.sleep(1)
                continue
            for records in batches.values():
                for record in records:
                    if record.key != BARRIER_KEY:
                        self._apply(record.value)

    def _apply(self, value: bytes | None) -> None:
        try:
            self._ledger.apply(LedgerEntry.model_validate(json.loads(value or b"null")))
        except (ValueError, ValidationError) as exc:
            log.warning("ledger.unreadable_entry", error=str(exc)[:200])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
