"""One command message, start to finish: decode, consult the ledger, execute, record the
outcome, publish its result.

The result is computed once; recording and publishing it are retried until Kafka
acknowledges them, so a broker hiccup never makes Exotel see the command twice. Only a
shutdown can interrupt the retry, and then the offset stays uncommitted (the ledger then
tells the next run what was already done).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from contracts.commands import CommandType
from contracts.decoding import UnreadableCommand, command_type_of, decode_command
from contracts.details import CallDetails
from services.common.kafka_health import KafkaHealth
from services.executor.incoming import IncomingCommand
from services.executor.ledger import CommandLedger, Lanes, LedgerEntry, record_source
from services.executor.metrics import ExecutorMetrics
from services.executor.publishing import dead_letter_record, details_record, result_record
from services.executor.service import CommandService
from services.executor.state.lanes import LaneClosed
from services.executor.state.records import Record

log = structlog.get_logger(__name__)


class ShuttingDown(Exception):
    """The process is stopping before the outcome was acknowledged."""


@dataclass
class CommandPipeline:
    service: CommandService
    metrics: ExecutorMetrics
    stopping: Callable[[], bool]
    ledger: CommandLedger
    lanes: Lanes
    kafka_health: KafkaHealth | None = None
    publish_backoff_seconds: float = 0.5
    restore_timeout_seconds: float = 240.0
    #: whether this replica still owns a command's partition (topic, partition)
    owns: Callable[[str, int], bool] = lambda _topic, _partition: True

    async def process(self, command: IncomingCommand) -> None:
        """Everything one command message causes, in order. The writes go through the
        partition's lane: with transactions, the outcome, the result and the offset past
        the command are committed together after this returns."""
        with structlog.contextvars.bound_contextvars(
            topic=command.topic, partition=command.partition, offset=command.offset
        ):
            lane = await self.lanes.acquired(command.partition, self.restore_timeout_seconds)
            try:
                decoded = decode_command(command.topic, command.value)
            except UnreadableCommand as exc:
                letter = dead_letter_record(command, exc.reason)
                await self._until_acked(lambda: lane.finish([letter]))
                self.metrics.dead_letters.labels(command.topic).inc()
                log.warning("command.dead_lettered", reason=exc.reason)
                return
            command_type = command_type_of(decoded)
            with structlog.contextvars.bound_contextvars(command_id=decoded.command_id):
                entry = await self.ledger.find(
                    command_type, decoded.command_id, partition=command.partition
                )
                source = record_source(command.topic, command.partition, command.offset)
                if (
                    entry is not None
                    and entry.state == "done"
                    and entry.source == source
                    and lane.atomic
                ):
                    # This very record again (a crash or rebalance before its offset was
                    # committed): its result was committed with its outcome, so nothing
                    # is published; the offset moves on with the lane's next transaction.
                    self.metrics.duplicates.labels(command_type).inc()
                    log.info(
                        "command.redelivered",
                        outcome=entry.result.outcome if entry.result else None,
                    )
                    await self._until_acked(lambda: lane.finish([]))
                    return
                if entry is not None and entry.state == "done" and entry.result is not None:
                    # A duplicate publish (or, without transactions, a redelivery): the
                    # same result again, no request.
                    result = entry.result
                    self.metrics.duplicates.labels(command_type).inc()
                    log.info("command.duplicate", outcome=result.outcome)
                    again = result_record(command, result)
                    await self._until_acked(lambda: lane.finish([again]))
                else:
                    if entry is not None:
                        self.metrics.in_doubt.labels(command_type).inc()
                        log.warning("command.in_doubt", intent_at=entry.at.isoformat())
                    writes = _CommandWrites(self.ledger, command)
                    result = await self.service.execute(
                        decoded,
                        command_type=command_type,
                        requested_at=command.requested_at,
                        in_doubt=entry,
                        journal=writes,
                        facts=writes,
                        stopping=lambda: (
                            self.stopping() or not self.owns(command.topic, command.partition)
                        ),
                    )
                    fact = result_record(command, result)
                    details = writes.take()
                    await self._until_acked(
                        lambda: self.ledger.complete(
                            command.partition, result, facts=[fact], before=details, source=source
                        )
                    )
                self.metrics.commands.labels(command_type, result.outcome, result.account).inc()
                log.info(
                    "command.done",
                    outcome=result.outcome,
                    call_sid=result.call_sid,
                    attempts=result.attempts,
                    error_code=result.error.code if result.error else None,
                )

    async def _until_acked(self, write: Callable[[], Awaitable[object]]) -> None:
        """Retry a write until Kafka takes it (a plain lane waits for acks; a
        transactional one only queues, and its transactions retry on their own)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await write()
            except LaneClosed:
                raise  # the partition is gone: its next owner runs the command
            except Exception as exc:
                if self.kafka_health is not None:
                    self.kafka_health.failed(f"{type(exc).__name__}: {exc}"[:300])
                if self.stopping():
                    raise ShuttingDown("outcome not acknowledged before shutdown") from exc
                log.warning("kafka.publish_retry", attempt=attempt, error=repr(exc))
                await asyncio.sleep(min(self.publish_backoff_seconds * attempt, 5.0))
            else:
                if self.kafka_health is not None:
                    self.kafka_health.succeeded()
                return


@dataclass
class _CommandWrites:
    """One command's ledger writes before its outcome (its intent; a backfill's
    checkpoints) and its ``call.details`` facts (an ``EffectJournal`` and a
    ``DetailsSink``). The facts go with the command's next ledger write, through its
    partition's lane: a backfill's page with the checkpoint after it, the rest with the
    outcome, so where the broker has transactions they commit together with it."""

    ledger: CommandLedger
    command: IncomingCommand
    _facts: list[Record] = field(default_factory=list)

    async def publish(self, fact: CallDetails) -> None:
        self._facts.append(details_record(self.command, fact))

    async def intend(
        self,
        *,
        command_id: str,
        command_type: CommandType,
        account: str,
        evidence: Mapping[str, str],
    ) -> LedgerEntry:
        return await self.ledger.intend(
            partition=self.command.partition,
            command_id=command_id,
            command_type=command_type,
            account=account,
            evidence=evidence,
            facts=self.take(),
        )

    def take(self) -> list[Record]:
        """The facts not written yet (they leave this object)."""
        facts, self._facts = self._facts, []
        return facts
