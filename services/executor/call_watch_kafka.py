"""Missing-callback recovery, the Kafka side: runs inside the executor process.

* Its own consumer group (``EXECUTOR_CALL_WATCH_GROUP_ID``, default
  ``voicebus-call-watch``) reads ``call.connect.result`` and ``call.status``. Both are keyed
  by ``call_sid`` and have the same partition count, so partition *p* of one holds the same
  calls as partition *p* of the other; the range assignor hands each replica the same
  partition numbers of both topics, and each replica watches the calls of its partitions.
* A ``call.status`` flow event (a call flow's Passthru: an inbound call, or a flow call
  whose result was not read yet) makes its call watched like an accepted one, under the
  account its Passthru URL names (``account``, else ``default``), polled in v1 call details
  (:data:`FLOW_CALL_API`); a terminal call event (never a leg's) clears it.
* Nothing is committed: on every assignment the partitions are read again from
  ``now - horizon`` (``offsets_for_times``; the embedded broker answers offset 0 for any
  time, so records older than the horizon are also skipped by timestamp). The state is
  what Kafka holds, rebuilt on start and after every rebalance.
* No call is polled before every assigned partition has been read up to its high-water
  mark once (from fetch responses, which the embedded broker reports correctly), so a
  terminal callback already in Kafka is always seen before the call is considered missing.
* Every ``sweep_seconds`` the overdue calls are polled through the executor's own
  :class:`ExotelClient` of the call's account (so the shared :class:`RateLimiter`'s ``get``
  budget applies), at most ``concurrency`` at once; a finished call's details become a
  ``call.status`` terminal fact with ``source="poll"``, published with CloudEvents headers
  (``ce_source`` ``voicebus/executor-call-watch``), key ``call_sid``, awaiting Kafka's ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from contracts.results import CommandResult
from contracts.status import CallStatusEvent
from contracts.topics import CALL_CONNECT_RESULT, CALL_STATUS
from services.common.kafka import status_fact_headers
from services.common.kafka_security import security_options
from services.common.settings import KafkaSettings
from services.executor.call_watch import CallWatch, PollOutcome, WatchedCall, poll_event
from services.executor.metrics import ExecutorMetrics
from services.exotel.accounts import DEFAULT_ACCOUNT, ApiVersion
from services.exotel.errors import ExotelError, ExotelNotFound
from services.exotel.models import CallDetails

log = structlog.get_logger(__name__)

CE_SOURCE = "voicebus/executor-call-watch"
#: Calls first seen through a Passthru are polled in v1 call details, whatever the
#: account's API: v1 covers inbound calls (Direction inbound), v2's GET does not ("Incoming
#: / Outgoing calls connecting via flow is not yet available", v2-ccm-calls.txt).
FLOW_CALL_API: ApiVersion = "v1"
WATCHED_TOPICS = (CALL_CONNECT_RESULT, CALL_STATUS)
#: Longest wait for the rebuild to reach the high-water marks before sweeping anyway.
MAX_REPLAY_SECONDS = 120.0


class CallDetailsSource(Protocol):
    """What the watch needs of an account's :class:`services.exotel.client.ExotelClient`."""

    async def call_details(self, call_sid: str, api: ApiVersion | None = None) -> CallDetails: ...


class WatchMetrics(Protocol):
    def polled(self, outcome: PollOutcome) -> None: ...

    def recovered(self) -> None: ...

    def watched(self, count: int) -> None: ...


Publish = Callable[[bytes, str, bytes, dict[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class PrometheusWatchMetrics:
    """:class:`WatchMetrics` on the executor's registry."""

    metrics: ExecutorMetrics

    def polled(self, outcome: PollOutcome) -> None:
        self.metrics.call_watch_polls.labels(outcome).inc()

    def recovered(self) -> None:
        self.metrics.call_watch_recovered.inc()

    def watched(self, count: int) -> None:
        self.metrics.call_watch_watched.set(count)


@dataclass(frozen=True)
class WatchAccount:
    gateway: CallDetailsSource
    default_api: ApiVersion


def fact_headers(event: CallStatusEvent) -> dict[str, str]:
    """CloudEvents binary-mode headers of a ``call.status`` fact from here."""
    return status_fact_headers(event, source=CE_SOURCE)


def _utc(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


class _Rebuild(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: CallWatchRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._runner.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._runner.assigned(list(assigned))


class CallWatchRunner:
    """Feeds a :class:`CallWatch` from Kafka and polls Exotel for its overdue calls."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        group_id: str,
        watch: CallWatch,
        accounts: Mapping[str, WatchAccount],
        publish: Publish,
        metrics: WatchMetrics,
        sweep_seconds: float,
        concurrency: int = 4,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kafka = kafka
        self._group_id = group_id
        self._watch = watch
        self._accounts = accounts
        self._publish = publish
        self._metrics = metrics
        self._sweep_seconds = sweep_seconds
        self._concurrency = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._replaying: set[TopicPartition] = set()
        self._replay_started = 0.0

    @property
    def watch(self) -> CallWatch:
        return self._watch

    @property
    def replaying(self) -> bool:
        return bool(self._replaying)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._kafka.bootstrap_servers,
            client_id=f"{self._kafka.client_id}-call-watch",
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Same partition numbers of both topics to the same member (co-partitioned).
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=self._kafka.session_timeout_ms,
            heartbeat_interval_ms=self._kafka.heartbeat_interval_ms,
            max_poll_interval_ms=self._kafka.max_poll_interval_ms,
            request_timeout_ms=self._kafka.request_timeout_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **security_options(self._kafka),
        )
        await consumer.start()
        consumer.subscribe(list(WATCHED_TOPICS), listener=_Rebuild(self))
        self._consumer = consumer
        self._tasks = [
            asyncio.create_task(self._consume(), name="call-watch-consume"),
            asyncio.create_task(self._sweep_forever(), name="call-watch-sweep"),
        ]
        log.info("call_watch.started", group_id=self._group_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        log.info("call_watch.stopped", watched=len(self._watch))

    # ------------------------------------------------------------------ rebalance

    def revoked(self, partitions: list[TopicPartition]) -> None:
        dropped = self._watch.drop_partitions(
            tp.partition for tp in partitions if tp.topic == CALL_CONNECT_RESULT
        )
        self._replaying.difference_update(partitions)
        self._metrics.watched(len(self._watch))
        if partitions:
            log.info("call_watch.partitions_revoked", partitions=len(partitions), dropped=dropped)

    async def assigned(self, partitions: list[TopicPartition]) -> None:
        """Read the new partitions again from ``now - horizon`` (state is never committed)."""
        consumer = self._consumer
        if consumer is None or not partitions:
            return
        since = self._clock().timestamp() - self._watch.policy.horizon_seconds
        try:
            found = await consumer.offsets_for_times({tp: int(since * 1000) for tp in partitions})
        except (KafkaError, ValueError, OSError) as exc:
            log.warning("call_watch.offsets_for_times_failed", error=repr(exc))
            found = {}
        for tp in partitions:
            position = found.get(tp)
            if tp not in found:
                await consumer.seek_to_beginning(tp)
            elif position is None:  # nothing newer than the horizon
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, position.offset)
        self._replaying.update(partitions)
        self._replay_started = time.monotonic()
        log.info("call_watch.partitions_assigned", partitions=len(partitions))

    # ------------------------------------------------------------------ reading

    async def _consume(self) -> None:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("the call watch's consumer is not started")
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep following whatever failed
                log.warning("call_watch.fetch_failed", error=repr(exc))
                await asyncio.sleep(1)
                continue
            now = self._clock()
            for records in batches.values():
                for record in records:
                    self.apply(record, now)
            await self._check_replay(consumer)
            self._metrics.watched(len(self._watch))

    def apply(self, record: ConsumerRecord[bytes, bytes], now: datetime) -> None:
        """One record of ``call.connect.result`` or ``call.status``."""
        at = _utc(record.timestamp)
        if at.timestamp() < now.timestamp() - self._watch.policy.horizon_seconds:
            return
        try:
            value = json.loads(record.value or b"null")
        except ValueError:
            return
        if not isinstance(value, dict):
            return
        if record.topic == CALL_STATUS:
            self._status(value, at, record.partition, now)
            return
        if record.topic != CALL_CONNECT_RESULT or value.get("outcome") != "accepted":
            return
        try:
            result = CommandResult.model_validate(value)
        except ValidationError:
            return
        if result.command_type != "call.connect" or not result.call_sid:
            return
        account = self._accounts.get(result.account)
        if account is None:
            log.warning("call_watch.unknown_account", account=result.account)
            return
        self._watch.accepted(
            result.call_sid,
            account=result.account,
            api=result.api or account.default_api,
            command_id=result.command_id,
            accepted_at=at,
            partition=record.partition,
            now=now,
        )

    def _status(self, value: dict[str, Any], at: datetime, partition: int, now: datetime) -> None:
        """A ``call.status`` fact: a call's terminal clears it; a flow notification (a call
        first seen through a Passthru: an inbound call) makes it watched."""
        call_sid = value.get("call_sid")
        if not isinstance(call_sid, str):
            return
        event_type = value.get("event_type")
        leg_event = bool(value.get("leg_sid")) or value.get("api") == "lwb"
        if event_type == "terminal" and not leg_event:
            self._watch.finished(call_sid, at)
            return
        if event_type != "flow":
            return
        account = value.get("account") or DEFAULT_ACCOUNT
        if account not in self._accounts:
            log.warning("call_watch.unknown_account", account=account, call_sid=call_sid)
            return
        self._watch.accepted(
            call_sid,
            account=account,
            api=FLOW_CALL_API,
            command_id=None,
            accepted_at=at,
            partition=partition,
            now=now,
            seen_in="flow",
        )

    async def _check_replay(self, consumer: AIOKafkaConsumer) -> None:
        if not self._replaying:
            return
        for tp in list(self._replaying):
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            with contextlib.suppress(KafkaError, AssertionError, ValueError):
                if await consumer.position(tp) >= highwater:
                    self._replaying.discard(tp)
        if not self._replaying:
            log.info("call_watch.rebuilt", watched=len(self._watch))
        elif time.monotonic() - self._replay_started > MAX_REPLAY_SECONDS:
            log.warning("call_watch.rebuild_slow", partitions=len(self._replaying))
            self._replaying.clear()

    # ------------------------------------------------------------------ polling

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("call_watch.sweep_failed", error=repr(exc))

    async def sweep(self) -> int:
        """Poll every overdue call (unless the state is still being rebuilt)."""
        now = self._clock()
        forgotten = self._watch.prune(now)
        if forgotten:
            log.info("call_watch.forgotten", calls=forgotten)
        if self._replaying:
            return 0
        due = self._watch.due(now)
        for call in due:
            self._watch.polling(call.call_sid)
        await asyncio.gather(*(self._poll(call) for call in due))
        self._metrics.watched(len(self._watch))
        return len(due)

    async def _poll(self, call: WatchedCall) -> None:
        outcome: PollOutcome = "error"
        try:
            async with self._concurrency:
                outcome = await self._poll_once(call)
        finally:
            self._metrics.polled(outcome)
            kept = self._watch.polled(call.call_sid, outcome, self._clock())
            if not kept:
                log.warning(
                    "call_watch.gave_up",
                    call_sid=call.call_sid,
                    account=call.account,
                    polls=call.polls,
                    errors=call.errors,
                )

    async def _poll_once(self, call: WatchedCall) -> PollOutcome:
        account = self._accounts.get(call.account)
        if account is None or call.call_sid not in self._watch:
            return "error"
        try:
            details = await account.gateway.call_details(call.call_sid, call.api)
        except ExotelNotFound:
            if call.seen_in == "flow":
                log.warning("call_watch.unknown_call", call_sid=call.call_sid, account=call.account)
                return "unknown"
            log.warning("call_watch.poll_failed", call_sid=call.call_sid, error="not found")
            return "error"
        except ExotelError as exc:
            log.warning("call_watch.poll_failed", call_sid=call.call_sid, error=str(exc)[:200])
            return "error"
        if not details.is_terminal:
            log.info("call_watch.still_active", call_sid=call.call_sid, status=details.status)
            return "active"
        if call.call_sid not in self._watch:
            return "terminal"  # its terminal callback arrived while we asked
        event = poll_event(call, details, received_at=self._clock())
        try:
            await self._publish(
                event.model_dump_json(by_alias=True).encode(),
                CALL_STATUS,
                event.call_sid.encode(),
                fact_headers(event),
            )
        except Exception as exc:  # noqa: BLE001 - not published: poll again later
            log.warning("call_watch.publish_failed", call_sid=call.call_sid, error=repr(exc))
            return "error"
        self._metrics.recovered()
        log.info(
            "call_watch.recovered",
            call_sid=call.call_sid,
            status=event.status,
            command_id=call.command_id,
        )
        return "terminal"
