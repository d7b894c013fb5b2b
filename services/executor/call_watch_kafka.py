"""Missing-callback recovery and finalisation, the Kafka side: runs inside the executor.

* Its own consumer group (``EXECUTOR_CALL_WATCH_GROUP_ID``, default
  ``voicebus-call-watch``) reads ``call.connect.result``, ``call.status`` and
  ``call.details``. All three are keyed by ``call_sid`` and have the same partition count,
  so partition *p* of one holds the same calls as partition *p* of the others; the range
  assignor hands each replica the same partition numbers of all three, and each replica
  watches (and finalises) the calls of its partitions. Should ``call.details`` have another
  partition count than ``call.status``, finalisation stays off (logged): two replicas
  could otherwise finalise one call.
* A ``call.status`` flow event (a call flow's Passthru: an inbound call, or a flow call
  whose result was not read yet) makes its call watched like an accepted one, under the
  account its Passthru URL names (``account``, else ``default``), polled in v1 call details
  (:data:`FLOW_CALL_API`); a terminal call event (never a leg's) clears it.
* State per partition (:mod:`services.executor.state.watch_store`): one compact row per
  call in the executor's local store, written with the next offset to read of each of
  the partition's topics after every batch. On assignment, before the watch acts on a
  partition, its open items (calls missing a terminal, calls to finalise) come back from
  the store and only the records after its checkpoints are read; without a checkpoint
  (a fresh store) from ``now - horizon`` (``offsets_for_times``; the embedded broker
  answers offset 0 for any time, so records older than the horizon are also skipped by
  timestamp). Nothing is committed to the group: the store is a cache of Kafka, and
  without it the same state is rebuilt from Kafka alone. Revoked partitions leave memory
  (their rows stay in the store, for a return).
* No call of a partition is polled before that partition has been read up to its
  high-water mark (from fetch responses, which the embedded broker reports correctly),
  so a terminal callback already in Kafka is always seen before the call is considered
  missing; the other partitions are swept meanwhile.
* Every ``sweep_seconds`` the overdue calls are polled through the executor's own
  :class:`ExotelClient` of the call's account (so the shared :class:`RateLimiter`'s ``get``
  budget applies), at most ``concurrency`` at once; a finished call's details become a
  ``call.status`` terminal fact with ``source="poll"``, published with CloudEvents headers
  (``ce_source`` ``voicebus/executor-call-watch``), key ``call_sid``, awaiting Kafka's ack.
* Finalisation (``EXECUTOR_CALL_DETAILS_AFTER_SECONDS`` after a call's first terminal
  fact, see :mod:`.call_watch`): the call's details (:mod:`services.executor.details`)
  through the same client, published on ``call.details`` (``source="poll"``). At most once
  per call: the ``call.details`` facts read back finalise calls (also after a restart or
  on another replica), and a replica losing a partition first waits for the finalisations
  of that partition it is publishing, so the new owner reads them in its rebuild. Only a
  publish whose acknowledgement was lost is tried again later (with the same
  ``details_id``, unless the fact has been read back by then).
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
from contracts.topics import CALL_CONNECT_RESULT, CALL_DETAILS, CALL_STATUS
from services.common.kafka import status_fact_headers
from services.common.kafka_security import security_options
from services.common.settings import KafkaSettings
from services.executor.call_watch import (
    CALL_APIS,
    MAX_FINALISE_TRIES,
    CallWatch,
    Finalisation,
    FinaliseOutcome,
    PollOutcome,
    WatchedCall,
    poll_event,
)
from services.executor.details import DetailsReader, details_fact, fetch_call, plain_read
from services.executor.metrics import ExecutorMetrics
from services.executor.publishing import details_headers
from services.executor.retry import Failed
from services.executor.state.restore import RestoreProgress, RestoreStats
from services.executor.state.watch_store import WatchStore
from services.exotel.accounts import DEFAULT_ACCOUNT, ApiVersion
from services.exotel.errors import ExotelError, ExotelNotFound

log = structlog.get_logger(__name__)

CE_SOURCE = "voicebus/executor-call-watch"
#: Calls first seen through a Passthru are polled in v1 call details, whatever the
#: account's API: v1 covers inbound calls (Direction inbound), v2's GET does not ("Incoming
#: / Outgoing calls connecting via flow is not yet available", v2-ccm-calls.txt).
FLOW_CALL_API: ApiVersion = "v1"
WATCHED_TOPICS = (CALL_CONNECT_RESULT, CALL_STATUS, CALL_DETAILS)
#: Longest wait for the rebuild to reach the high-water marks before sweeping anyway.
MAX_REPLAY_SECONDS = 120.0


class WatchMetrics(Protocol):
    def polled(self, outcome: PollOutcome) -> None: ...

    def recovered(self) -> None: ...

    def watched(self, count: int) -> None: ...

    def finalised(self, outcome: FinaliseOutcome) -> None: ...

    def finalisations(self, count: int) -> None: ...


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

    def finalised(self, outcome: FinaliseOutcome) -> None:
        self.metrics.call_details_fetches.labels(outcome).inc()

    def finalisations(self, count: int) -> None:
        self.metrics.call_details_pending.set(count)


@dataclass(frozen=True)
class WatchAccount:
    gateway: DetailsReader
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
        await self._runner.revoked(list(revoked))

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
        publish_timeout_seconds: float = 30.0,
        store: WatchStore | None = None,
        exact_end_offsets: bool = True,
    ) -> None:
        """``store``: the watch's rows and checkpoints (``watch.history`` must be it);
        without one every assignment reads its partitions from ``now - horizon`` again.
        ``exact_end_offsets``: the broker's end offsets are exact (Apache Kafka; not
        Tansu), so a checkpoint beyond a partition's end means the topic was recreated."""
        if store is not None and watch.history is not store:
            raise ValueError("the call watch's history must be its store")
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
        self._publish_timeout = publish_timeout_seconds
        #: partition numbers this replica owns (all of them until told otherwise)
        self._owned: set[int] | None = None
        #: finalisations being published: call sid -> (partition, the publish)
        self._publishing: dict[str, tuple[int, asyncio.Future[None]]] = {}
        self._copartitioned = True
        self._store = store
        self._exact = exact_end_offsets
        #: restores of this process (records read until the partitions were caught up)
        self.progress = RestoreProgress()
        self._restoring: list[int] = []

    @property
    def watch(self) -> CallWatch:
        return self._watch

    @property
    def replaying(self) -> bool:
        return bool(self._replaying)

    def restoring(self) -> set[int]:
        """Partitions not read up to their high-water marks yet: none of their calls is
        polled or finalised."""
        return {tp.partition for tp in self._replaying}

    def status(self) -> dict[str, object]:
        """What ``/readyz`` shows of the watch (it never makes the executor unready)."""
        owned = sorted(self._owned or ())
        detail: dict[str, object] = {
            "partitions": owned,
            "restoring": sorted(self.restoring()),
            "watched": len(self._watch),
            "finalisations": self._watch.finalisations,
            "restored_since_start": self.progress.totals(),
        }
        if self.progress.last:
            detail["last_restore"] = self.progress.last
        if self._store is not None:
            detail["stored_calls"] = self._store.rows_in(owned)
        return {"call_watch": detail}

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
        if self._store is not None:
            await self._store.flush()  # what sweeps changed since the last batch
        log.info("call_watch.stopped", watched=len(self._watch))

    # ------------------------------------------------------------------ rebalance

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        """Forget the revoked partitions' calls; first let the finalisations of theirs
        being published be acknowledged, so the next owner reads them back."""
        numbers = {tp.partition for tp in partitions}
        if self._owned is not None:
            self._owned -= numbers
        dropped = self._watch.drop_partitions(numbers)
        self._replaying.difference_update(partitions)
        if not self._replaying:
            self.progress.active = False  # what was being restored is gone
        self._metrics.watched(len(self._watch))
        publishing = [
            future for partition, future in self._publishing.values() if partition in numbers
        ]
        if publishing:
            await asyncio.wait(publishing, timeout=self._publish_timeout)
        if partitions:
            log.info(
                "call_watch.partitions_revoked",
                partitions=len(partitions),
                dropped=dropped,
                waited_for=len(publishing),
            )

    async def assigned(self, partitions: list[TopicPartition]) -> None:
        """Restore the new partitions: their open items from the store, then the records
        after their checkpoints (without one, from ``now - horizon``)."""
        consumer = self._consumer
        if consumer is None or not partitions:
            return
        started = time.monotonic()
        numbers = {tp.partition for tp in partitions}
        # The assignment is live before this listener runs: records fetched from the
        # group's reset position meanwhile must not be applied (nor checkpointed).
        consumer.pause(*partitions)
        try:
            loaded, checkpoints = await self._seek(consumer, partitions)
        finally:
            consumer.resume(*partitions)
        self._replaying.update(partitions)
        self._replay_started = started
        self._restoring = sorted(numbers)
        self.progress.active, self.progress.read = True, 0
        self._owned = (self._owned or set()) | numbers
        self._check_copartitioned(consumer)
        log.info(
            "call_watch.partitions_assigned",
            partitions=len(partitions),
            from_checkpoints=len(checkpoints),
            watched_from_store=loaded,
        )

    async def _seek(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> tuple[int, dict[TopicPartition, int]]:
        """Open items from the store, and every partition at its checkpoint (without one,
        at ``now - horizon``); how many calls came from the store, and the checkpoints."""
        now = self._clock()
        since = now.timestamp() - self._watch.policy.horizon_seconds
        numbers = {tp.partition for tp in partitions}
        try:
            found = await consumer.offsets_for_times({tp: int(since * 1000) for tp in partitions})
        except (KafkaError, ValueError, OSError) as exc:
            log.warning("call_watch.offsets_for_times_failed", error=repr(exc))
            found = {}
        checkpoints: dict[TopicPartition, int] = {}
        loaded = 0
        if self._store is not None:
            checkpoints = await self._checkpoints(consumer, partitions)
            policy = self._watch.policy
            rows = self._store.open_rows(
                numbers,
                since,
                missing=policy.watch_missing,
                finalising=policy.finalise_after_seconds is not None,
            )
            loaded = self._watch.restore(rows, now)
        for tp in partitions:
            checkpoint = checkpoints.get(tp)
            position = found.get(tp)
            if tp in found and position is None:  # nothing newer than the horizon
                await consumer.seek_to_end(tp)
            elif position is not None:
                consumer.seek(tp, max(position.offset, checkpoint or 0))
            elif checkpoint is not None:
                consumer.seek(tp, checkpoint)
            else:
                await consumer.seek_to_beginning(tp)
        return loaded, checkpoints

    async def _checkpoints(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """The store's next offsets of ``partitions``; a partition whose checkpoint lies
        beyond its topic's end (the topic was recreated) is forgotten, read again."""
        store = self._store
        if store is None:
            return {}
        found = {tp: store.position(tp.topic, tp.partition) for tp in partitions}
        stale: set[int] = set()
        if self._exact:
            try:
                ends = await consumer.end_offsets(partitions)
            except (KafkaError, ValueError, OSError) as exc:
                log.warning("call_watch.end_offsets_failed", error=repr(exc))
                ends = {}
            stale = {
                tp.partition
                for tp, offset in found.items()
                if offset is not None and tp in ends and offset > ends[tp]
            }
        if stale:
            log.warning("call_watch.checkpoint_beyond_end", partitions=sorted(stale))
            store.forget(stale)
        return {
            tp: offset
            for tp, offset in found.items()
            if offset is not None and tp.partition not in stale
        }

    def _check_copartitioned(self, consumer: AIOKafkaConsumer) -> None:
        """Finalisation needs call.details partitioned like call.status (see above)."""
        counts = {t: len(consumer.partitions_for_topic(t) or ()) for t in WATCHED_TOPICS}
        if not counts[CALL_STATUS] or not counts[CALL_DETAILS]:
            return  # not in the metadata yet: decided on the next assignment
        self._copartitioned = counts[CALL_STATUS] == counts[CALL_DETAILS]
        if not self._copartitioned and self._watch.policy.finalise_after_seconds is not None:
            log.error(
                "call_watch.details_not_copartitioned",
                call_status_partitions=counts[CALL_STATUS],
                call_details_partitions=counts[CALL_DETAILS],
                effect="no call details are fetched after calls end: give call.details "
                "as many partitions as call.status",
            )

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
            if self._store is not None:
                self._store.read_ahead(
                    r.key.decode(errors="replace") for rs in batches.values() for r in rs if r.key
                )
            for tp, records in batches.items():
                for record in records:
                    self.apply(record, now)
                if tp in self._replaying:
                    self.progress.read += len(records)
            await self._checkpoint(batches)
            await self._check_replay(consumer)
            self._metrics.watched(len(self._watch))

    async def _checkpoint(self, batches: Mapping[TopicPartition, list[Any]]) -> None:
        """The rows the batch changed, with the offsets after it, into the store."""
        if self._store is None or not batches:
            return
        positions = [
            (tp.topic, tp.partition, records[-1].offset + 1)
            for tp, records in batches.items()
            if records
        ]
        try:
            await self._store.flush(positions)
        except Exception as exc:  # noqa: BLE001 - kept in memory, written with the next batch
            log.warning("call_watch.store_failed", error=repr(exc))

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
        if record.topic == CALL_DETAILS:
            if value.get("source") == "poll" and isinstance(value.get("call_sid"), str):
                self._watch.finalised(value["call_sid"], at, record.partition)
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
        """A ``call.status`` fact: a call's terminal clears its watch and schedules its
        finalisation; a leg event (a leg's, or a monitor leg's: ``api: lwb``) says the call
        had more than two participants; a flow notification (a call first seen through a
        Passthru: an inbound call) makes it watched."""
        call_sid = value.get("call_sid")
        if not isinstance(call_sid, str):
            return
        event_type = value.get("event_type")
        if value.get("leg_sid") or value.get("api") == "lwb":
            self._watch.leg_event(call_sid, at, partition)
            return
        if event_type == "terminal":
            self._watch.finished(call_sid, at, partition)
            self._schedule_finalisation(call_sid, value, at, partition, now)
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

    def _schedule_finalisation(
        self, call_sid: str, value: dict[str, Any], at: datetime, partition: int, now: datetime
    ) -> None:
        name = value.get("account") or DEFAULT_ACCOUNT
        account = self._accounts.get(name) if isinstance(name, str) else None
        if account is None:
            return
        command_id = value.get("command_id")
        self._watch.terminal(
            call_sid,
            account=name,
            api=CALL_APIS.get(str(value.get("api")), account.default_api),
            command_id=command_id if isinstance(command_id, str) else None,
            at=at,
            partition=partition,
            now=now,
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
            self._restored()
        elif time.monotonic() - self._replay_started > MAX_REPLAY_SECONDS:
            log.warning("call_watch.rebuild_slow", partitions=len(self._replaying))
            self._replaying.clear()
            self._restored()

    def _restored(self) -> None:
        progress = self.progress
        if not progress.active:
            return
        stats = RestoreStats(
            progress.read, time.monotonic() - self._replay_started, self._restoring
        )
        progress.active = False
        progress.finished(stats)
        progress.last = {
            "partitions": stats.ledger_partitions,
            "records": stats.records,
            "seconds": round(stats.seconds, 2),
            "records_per_second": round(stats.rate),
        }
        log.info("call_watch.rebuilt", watched=len(self._watch), **progress.last)

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
        """Poll every overdue call (but those of partitions still being restored)."""
        now = self._clock()
        forgotten = self._watch.prune(now)
        if forgotten:
            log.info("call_watch.forgotten", calls=forgotten)
        restoring = self.restoring()
        due = [c for c in self._watch.due(now) if c.partition not in restoring]
        for call in due:
            self._watch.polling(call.call_sid)
        finals = (
            [f for f in self._watch.due_finalisations(now) if f.partition not in restoring]
            if self._copartitioned
            else []
        )
        for item in finals:
            self._watch.finalising(item.call_sid)
        await asyncio.gather(
            *(self._poll(call) for call in due), *(self._finalise(item) for item in finals)
        )
        self._metrics.watched(len(self._watch))
        self._metrics.finalisations(self._watch.finalisations)
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

    # ------------------------------------------------------------------ finalisation

    def _owns(self, partition: int) -> bool:
        return self._owned is None or partition in self._owned

    async def _finalise(self, item: Finalisation) -> None:
        outcome: FinaliseOutcome = "error"
        try:
            async with self._concurrency:
                outcome = await self._finalise_once(item)
        finally:
            self._metrics.finalised(outcome)
            self._watch.finalise_outcome(item.call_sid, outcome, self._clock())

    async def _finalise_once(self, item: Finalisation) -> FinaliseOutcome:
        account = self._accounts.get(item.account)
        if account is None:
            return "error"
        fetched = await fetch_call(
            account.gateway, plain_read, item.call_sid, item.api, all_legs=item.all_legs
        )
        if isinstance(fetched, Failed):
            log.warning(
                "call_details.fetch_failed", call_sid=item.call_sid, error=str(fetched.error)[:200]
            )
            return "error"
        if not fetched.details.is_terminal and item.tries + 1 < MAX_FINALISE_TRIES:
            return "pending"
        if self._watch.pending_finalisation(item.call_sid) is None or not self._owns(
            item.partition
        ):
            return "published"  # finalised meanwhile, or the partition is another's now
        fact = details_fact(
            fetched,
            source="poll",
            account=item.account,
            fetched_at=self._clock(),
            command_id=item.command_id,
        )
        publish = asyncio.ensure_future(
            self._publish(
                fact.model_dump_json(by_alias=True).encode(),
                CALL_DETAILS,
                fact.call_sid.encode(),
                details_headers(fact, source=CE_SOURCE),
            )
        )
        self._publishing[item.call_sid] = (item.partition, publish)
        try:
            await asyncio.shield(publish)
        except Exception as exc:  # noqa: BLE001 - not acknowledged: tried again later
            log.warning("call_details.publish_failed", call_sid=item.call_sid, error=repr(exc))
            return "error"
        finally:
            self._publishing.pop(item.call_sid, None)
        log.info(
            "call_details.published",
            call_sid=item.call_sid,
            status=fact.status,
            price=fact.price is not None,
        )
        return "published"
