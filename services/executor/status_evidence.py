"""``call.status`` as evidence for reconciling a ``call.connect`` whose answer was lost.

A call voicebus placed reports its status callbacks through the ingress, and every such
fact carries the ``command_id`` of the command that placed it. A search reads all
partitions of ``call.status`` from a little before the intent (``offsets_for_times``) and
on, incrementally, for as long as the reconcile lasts; it is opened only while a command
is in doubt, so nothing is read otherwise.
"""

from __future__ import annotations

import json
from datetime import datetime

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from contracts.topics import CALL_STATUS
from services.common.kafka import client_options, topic_partitions
from services.common.settings import KafkaSettings

log = structlog.get_logger(__name__)

BATCH = 5000


class KafkaStatusSearch:
    def __init__(self, settings: KafkaSettings, command_id: str, since: datetime) -> None:
        self._settings = settings
        self._wanted = command_id
        self._since = since
        self._consumer: AIOKafkaConsumer | None = None
        self._found: str | None = None

    async def _open(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            client_id=f"{self._settings.client_id}-status-evidence",
            enable_auto_commit=False,
            request_timeout_ms=self._settings.request_timeout_ms,
            **client_options(self._settings),
        )
        await consumer.start()
        tps = [
            TopicPartition(CALL_STATUS, p)
            for p in await topic_partitions(self._settings, CALL_STATUS)
        ]
        consumer.assign(tps)
        starts = await consumer.offsets_for_times(
            {tp: int(self._since.timestamp() * 1000) for tp in tps}
        )
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        self._consumer = consumer
        return consumer

    async def call_sid(self) -> str | None:
        if self._found is not None:
            return self._found
        try:
            consumer = self._consumer or await self._open()
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
        except KafkaError as exc:
            log.warning("status_evidence.read_failed", error=repr(exc))
            return None
        for records in batches.values():
            for record in records:
                if record.value and self._wanted.encode() in record.value:
                    self._found = self._found or _call_sid_for(record.value, self._wanted)
        return self._found

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


def _call_sid_for(value: bytes, command_id: str) -> str | None:
    try:
        event = json.loads(value)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("command_id") != command_id:
        return None
    sid = event.get("call_sid")
    return sid if isinstance(sid, str) and sid else None


class KafkaStatusEvidence:
    """A ``StatusEvidence`` on the real ``call.status`` topic."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings

    def search(self, command_id: str, since: datetime) -> KafkaStatusSearch:
        return KafkaStatusSearch(self._settings, command_id, since)
