"""The spooling outlet: Kafka when it answers in time, else the local spool, then replay.

A record (a ``call.status`` fact or a dead letter) is made durable in one of two ways
before the callback is answered 200 (or 400 for a dead letter):

* **directly**: Kafka acknowledged it within ``INGRESS_SPOOL_AFTER_SECONDS``. Only while
  Kafka is connected and the spool is empty;
* **spooled**: otherwise it is appended to the spool (:mod:`services.ingress.spool`) and
  fsync'd. Appends that arrive together share one fsync (group commit).

A background task replays the spool to Kafka in order, in pipelined batches, advancing the
replay position only over acknowledged records, and reconnects (re-creating the topics)
after any failure. Spooled records left by a previous run are replayed at start.

Order per call: callbacks of one call go through the call's *lane*, one group at a time in
arrival order: a group is sent only once the one before it is durable, and the callbacks
that queued up meanwhile go next, together, as one record batch (Kafka appends a batch
whole or not at all, so a group cannot be half in Kafka and half spooled). A callback goes
to Kafka directly only when the spool is empty. So a callback never overtakes an earlier
one of its call, in Kafka or in the spool; and a burst of one call's callbacks costs one
round trip per group instead of one per callback.

Duplicates: a record whose direct publish timed out may still reach Kafka later besides its
spooled copy, and a crash between a replayed batch's ack and the position update replays it
again. Both copies carry the same ``event_id`` (consumers dedupe on it); nothing is lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass, field

import structlog
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from faststream.exceptions import FastStreamException

from contracts.status import CallStatusEvent
from services.common.kafka_health import KafkaHealth
from services.common.kafka_security import KafkaAccessError
from services.ingress.metrics import IngressMetrics
from services.ingress.sinks import (
    GROUP_BYTES,
    DeadLetter,
    DeadLetterSink,
    FactSink,
    RecordProducer,
    SinkUnavailable,
    dead_letter_record,
    fact_record,
)
from services.ingress.spool import CorruptRecord, Spool, SpoolRecord

log = structlog.get_logger(__name__)

REPLAY_BATCH = 500
BACKOFF_INITIAL_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 2.0


@dataclass
class _Waiting:
    """A record on its way: durable by Kafka's ack before ``deadline`` (loop time), else
    spooled; ``done`` resolves then (or fails with the spool's OSError)."""

    record: SpoolRecord
    deadline: float
    done: asyncio.Future[None]


@dataclass
class _Lane:
    """One call's records not yet durable, in arrival order, and the task delivering them."""

    queue: collections.deque[_Waiting] = field(default_factory=collections.deque)
    task: asyncio.Task[None] | None = None


class _Facts:
    def __init__(self, outlet: SpoolingOutlet, spool_after: float | None = None) -> None:
        self._outlet = outlet
        self._spool_after = spool_after

    async def put(self, event: CallStatusEvent) -> None:
        await self._outlet.put(
            fact_record(event), order_key=event.call_sid, spool_after=self._spool_after
        )


class _DeadLetters:
    def __init__(self, outlet: SpoolingOutlet) -> None:
        self._outlet = outlet

    async def put(self, letter: DeadLetter) -> None:
        await self._outlet.put(dead_letter_record(letter), order_key=None)


class SpoolingOutlet:
    """An :class:`~services.ingress.sinks.Outlet` that never needs Kafka to answer."""

    def __init__(
        self,
        producer: RecordProducer,
        spool: Spool,
        *,
        metrics: IngressMetrics,
        spool_after_seconds: float,
        connect_timeout_seconds: float = 10.0,
        ack_timeout_seconds: float = 15.0,
        stop_timeout_seconds: float = 10.0,
        health: KafkaHealth | None = None,
    ) -> None:
        self._producer = producer
        self._spool = spool
        self._metrics = metrics
        self._spool_after = spool_after_seconds
        self._connect_timeout = connect_timeout_seconds
        self._ack_timeout = ack_timeout_seconds
        self._stop_timeout = stop_timeout_seconds
        self._health = health or KafkaHealth()
        self._connected = False
        self._reached = False
        self._last_error: str | None = None
        self._lanes: dict[str, _Lane] = {}
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._replayer: asyncio.Task[None] | None = None
        self._facts = _Facts(self)
        self._dead_letters = _DeadLetters(self)

    # ------------------------------------------------------------------ Outlet

    @property
    def facts(self) -> FactSink:
        return self._facts

    @property
    def dead_letters(self) -> DeadLetterSink:
        return self._dead_letters

    def facts_within(self, spool_after_seconds: float) -> FactSink:
        """The facts sink with its own wait for Kafka before spooling (a Passthru's caller
        waits for the answer: it spools sooner than a status callback)."""
        return _Facts(self, spool_after_seconds)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def ready(self) -> bool:
        """Kafka was reached (and the topics made) at least once since start."""
        return self._reached

    @property
    def depth(self) -> int:
        return self._spool.depth

    def status(self) -> dict[str, object]:
        """``kafka``: ``connected`` only while Kafka also takes writes (the write probe and
        the last publish or replay say so); otherwise ``unavailable`` and callbacks go to
        the spool. ``/readyz`` stays 200 either way: the ingress still accepts them."""
        writable = self._connected and self._health.writable
        detail: dict[str, object] = {
            **self._health.status(),
            "kafka": "connected" if writable else "unavailable",
            "spool_depth": self._spool.depth,
        }
        if not writable and self._last_error:
            detail["last_error"] = self._last_error
        return detail

    async def start(self) -> None:
        """Open the spool (raises OSError when it cannot); Kafka is connected behind it."""
        await asyncio.to_thread(self._spool.open)
        self._metrics.spool_depth.set(self._spool.depth)
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.create_task(self._replay_forever(), name="spool-replay")
        if self._spool.depth:
            self._wake.set()

    async def stop(self) -> None:
        lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if lanes:  # records whose callers stopped waiting: durable before the spool closes
            await asyncio.wait(lanes, timeout=self._stop_timeout)
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        await asyncio.to_thread(self._spool.close)
        try:
            async with asyncio.timeout(self._stop_timeout):
                await self._producer.stop()
        except TimeoutError:
            log.warning("ingress.kafka.stop_timeout", seconds=self._stop_timeout)
        log.info("ingress.spool.closed", depth=self._spool.depth)

    # ------------------------------------------------------------------ the write path

    async def put(
        self, record: SpoolRecord, *, order_key: str | None, spool_after: float | None = None
    ) -> None:
        """Return once ``record`` is acknowledged by Kafka (within ``spool_after``, default
        ``INGRESS_SPOOL_AFTER_SECONDS``) or fsync'd to the spool.

        Records with an ``order_key`` (a call sid) join that call's lane: one group of the
        call's records at a time, in arrival order; what queued up while a group was on its
        way goes next, together, as one record batch. A caller that stops waiting (its
        deadline) leaves its record in the lane: it is still made durable."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(
            record, loop.time() + (spool_after or self._spool_after), loop.create_future()
        )
        if order_key is None:
            await self._deliver([waiting])
        else:
            lane = self._lanes.get(order_key)
            if lane is None:
                lane = self._lanes[order_key] = _Lane()
                lane.task = asyncio.create_task(self._drain(order_key, lane))
            lane.queue.append(waiting)
        try:
            await asyncio.shield(waiting.done)
        except OSError as exc:
            raise SinkUnavailable(f"spool: {type(exc).__name__}") from exc

    async def _drain(self, key: str, lane: _Lane) -> None:
        """Deliver one call's records, a group at a time, until its lane is empty."""
        try:
            while lane.queue:
                group = [lane.queue.popleft()]
                size = group[0].record.size
                while lane.queue and size + lane.queue[0].record.size <= GROUP_BYTES:
                    size += lane.queue[0].record.size
                    group.append(lane.queue.popleft())
                await self._deliver(group)
        finally:
            # No await between the empty queue and this: a new record starts a new lane.
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _deliver(self, group: list[_Waiting]) -> None:
        """Make ``group`` (one call's records, in order) durable: directly when Kafka is
        connected and the spool empty (one record batch: all of them or none), else spooled,
        in order, behind everything spooled before."""
        loop = asyncio.get_running_loop()
        wait = min(item.deadline for item in group) - loop.time()
        if self._connected and self._spool.depth == 0 and wait > 0:
            records = [item.record for item in group]
            try:
                async with asyncio.timeout(wait):
                    if len(records) == 1:
                        ack = await self._producer.send(records[0])
                    else:
                        ack = await self._producer.send_group(records)
                    await asyncio.shield(ack)
            except (TimeoutError, KafkaError, FastStreamException) as exc:
                self._kafka_failed(exc, "publish")
            else:
                self._health.succeeded()
                for item in group:
                    if not item.done.done():
                        item.done.set_result(None)
                return
        await self._append(group)

    async def _append(self, group: list[_Waiting]) -> None:
        """Spool ``group`` in order (one group commit); return once it is written."""
        self._pending.extend((item.record.to_line(), item.done) for item in group)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="spool-flush")
        results = await asyncio.gather(
            *(asyncio.shield(item.done) for item in group), return_exceptions=True
        )
        for item, result in zip(group, results, strict=True):
            if result is None:
                self._metrics.spooled.labels(item.record.topic).inc()

    async def _flush(self) -> None:
        """Group commit: everything queued so far in one write and one fsync."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._spool.append, [line for line, _ in batch])
            except OSError as exc:
                log.exception("ingress.spool.write_failed", error=repr(exc), records=len(batch))
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
            self._metrics.spool_depth.set(self._spool.depth)
            self._wake.set()

    def _kafka_failed(self, exc: BaseException, during: str) -> None:
        if self._connected:
            log.warning("ingress.kafka.unavailable", during=during, error=repr(exc))
        self._connected = False
        # A KafkaAccessError says which setting or address is at fault (never a secret).
        self._last_error = str(exc) if isinstance(exc, KafkaAccessError) else type(exc).__name__
        self._health.failed(f"{during}: {self._last_error}")
        self._wake.set()

    # ------------------------------------------------------------------ replay

    async def _replay_forever(self) -> None:
        failures = 0
        while True:
            try:
                if not self._connected:
                    async with asyncio.timeout(self._connect_timeout):
                        await self._producer.connect()
                    self._connected, self._reached, self._last_error = True, True, None
                    log.info("ingress.kafka.connected", spool_depth=self._spool.depth)
                if self._spool.depth == 0:
                    self._wake.clear()
                    if self._spool.depth == 0 and self._connected:
                        await self._wake.wait()
                    continue
                await self._replay_batch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka down, a timeout, a disk error: retry
                failures += 1
                self._kafka_failed(exc, "replay")
                if failures == 1 or failures % 20 == 0:
                    log.warning(
                        "ingress.spool.replay_retry",
                        attempt=failures,
                        error=repr(exc),
                        depth=self._spool.depth,
                    )
                delay = min(BACKOFF_INITIAL_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS)
                await asyncio.sleep(delay)

    async def _replay_batch(self) -> None:
        """Replay up to :data:`REPLAY_BATCH` records; advance over the acknowledged prefix.

        One call's records go one at a time, each after the previous one's ack; different
        calls go concurrently. A call's later record is therefore never sent before an
        earlier one is in Kafka, even when Kafka fails half-way through (a pipelined batch
        could see an earlier record expire and a later one succeed). Records of other calls
        acknowledged past the first failure are sent again next time: duplicates with the
        same ``event_id``, never a reordering.
        """
        items = await asyncio.to_thread(self._spool.read, REPLAY_BATCH)
        if not items:  # pragma: no cover - depth and the files disagree: look again soon
            await asyncio.sleep(BACKOFF_INITIAL_SECONDS)
            return
        records: list[SpoolRecord] = []
        failure: Exception | None = None
        for item in items:
            try:
                records.append(SpoolRecord.from_line(item.line))
            except CorruptRecord as exc:
                failure = exc
                break  # replay what comes before; the corrupt line is the head next time
        acked = [False] * len(records)
        errors: dict[int, Exception] = {}
        groups: dict[object, list[int]] = {}
        for index, record in enumerate(records):
            groups.setdefault(record.key if record.key is not None else index, []).append(index)

        async def one_call(indices: list[int]) -> None:
            for index in indices:
                try:
                    ack = await self._producer.send(records[index])
                    await asyncio.shield(ack)
                except Exception as exc:
                    errors[index] = exc
                    raise
                acked[index] = True

        try:
            async with asyncio.timeout(self._ack_timeout):
                results = await asyncio.gather(
                    *(one_call(indices) for indices in groups.values()), return_exceptions=True
                )
        finally:
            done = 0
            while done < len(records) and acked[done]:
                done += 1
            if done:
                self._health.succeeded()
                await asyncio.to_thread(self._spool.advance, items[done - 1].end, done)
                for record in records[:done]:
                    self._metrics.replayed.labels(record.topic).inc()
                self._metrics.spool_depth.set(self._spool.depth)
                if self._spool.depth == 0:
                    log.info("ingress.spool.drained")
        head_error = errors.get(done) if done < len(records) else failure
        if isinstance(head_error, CorruptRecord | MessageSizeTooLargeError):
            # Kafka will never take it: keep it aside rather than stall everything behind it.
            await asyncio.to_thread(self._spool.reject, items[done], repr(head_error))
            self._metrics.spool_rejected.inc()
            self._metrics.spool_depth.set(self._spool.depth)
            return
        for result in results:
            if isinstance(result, Exception):
                raise result
