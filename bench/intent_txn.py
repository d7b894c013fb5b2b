"""What an intent costs with and without transactions (issue 15 item 2's floor).

``python -m bench intent``: one broker, one ledger partition, three producers with the
executor lanes' settings (acks=all, idempotent, no linger), one record of an intent's size
at a time, 30 ms apart, the three contenders taking turns sample by sample:

* *plain*: one acknowledged produce: an intent without transactions (the baseline);
* *transaction*: begin, produce, acknowledgement, commit: an intent as the intents lane
  writes it (its request waits for the commit);
* *open transaction*: a produce into a transaction already holding a record of that
  partition, acknowledged: what an intent would cost if its request waited only for the
  acknowledgement (a design this benchmark measures, not one voicebus has).

Prints the transaction's p99 over the plain produce's. A produce into an open transaction
costs what a plain one does; the gap is the transaction's first produce to the partition
(after the client's AddPartitionsToTxn; also slower than a plain produce when that round
trip was made ahead, consistent with the broker verifying it with the transaction
coordinator first: ``transaction.partition.verification.enable``, on by default) and
EndTxn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from bench.e2e import percentile
from bench.harness import chosen_broker, create_topics
from bench.throughput import Figure
from services.common.settings import KafkaSettings
from services.executor.state.kafka_lanes import TRANSACTION_RETRY_BACKOFF_MS, lane_producer
from services.executor.state.records import LEDGER_TOPIC

SAMPLES = 300
WARM_UP = 10
GAP_SECONDS = 0.03
PARTITION = 0
#: an open transaction is committed and begun again after this many records (it must
#: end well within the transaction timeout)
OPEN_FOR = 30
VALUE = b"x" * 600  # about an intent's JSON


def _producer(bootstrap: str, transactional_id: str | None = None) -> AIOKafkaProducer:
    """A producer built as the lanes build theirs (transactional ones as a partition's)."""
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    if transactional_id is None:
        return lane_producer(settings, enable_idempotence=True)
    return lane_producer(
        settings,
        enable_idempotence=True,
        transactional_id=transactional_id,
        retry_backoff_ms=TRANSACTION_RETRY_BACKOFF_MS,
    )


async def _timed(step: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await step()
    return (time.perf_counter() - started) * 1000


async def intent_cost() -> Figure:
    async with chosen_broker() as broker:
        bootstrap = broker.bootstrap_servers
        if not broker.transactions:
            return Figure("intent", 0.0, "intent: skipped (the broker has no transactions)", {})
        await create_topics(bootstrap, [LEDGER_TOPIC])
        plain = _producer(bootstrap)
        transaction = _producer(bootstrap, "bench-intent-transaction")
        held_open = _producer(bootstrap, "bench-intent-open")
        producers = (plain, transaction, held_open)
        await asyncio.gather(*(p.start() for p in producers))

        async def produce(producer: AIOKafkaProducer, key: bytes = b"intent") -> None:
            await (await producer.send(LEDGER_TOPIC, VALUE, key=key, partition=PARTITION))

        async def in_transaction() -> None:
            await transaction.begin_transaction()
            await produce(transaction)
            await transaction.commit_transaction()

        async def begin_open() -> None:
            await held_open.begin_transaction()
            await produce(held_open, b"opener")

        times: dict[str, list[float]] = {"plain": [], "transaction": [], "open": []}
        try:
            await begin_open()
            for sample in range(WARM_UP + SAMPLES):
                measured = {}
                for name, step in (
                    ("plain", lambda: produce(plain)),
                    ("transaction", in_transaction),
                    ("open", lambda: produce(held_open)),
                ):
                    await asyncio.sleep(GAP_SECONDS)
                    measured[name] = await _timed(step)
                if sample % OPEN_FOR == OPEN_FOR - 1:
                    await held_open.commit_transaction()
                    await begin_open()
                if sample >= WARM_UP:
                    for name, value in measured.items():
                        times[name].append(value)
            await held_open.commit_transaction()
        finally:
            await asyncio.gather(*(p.stop() for p in producers), return_exceptions=True)

    def p(name: str, q: float) -> float:
        return round(percentile(times[name], q), 2)

    ratio = p("transaction", 0.99) / p("plain", 0.99)
    line = (
        f"intent: transaction p99 / plain produce p99 = {ratio:.2f} "
        f"(transaction p50 {p('transaction', 0.5)} / p99 {p('transaction', 0.99)} ms, "
        f"plain {p('plain', 0.5)} / {p('plain', 0.99)} ms, "
        f"open transaction {p('open', 0.5)} / {p('open', 0.99)} ms; {broker.kind})"
    )
    details: dict[str, float | int | str] = {"samples": SAMPLES}
    for name in times:
        details |= {f"{name}_p50_ms": p(name, 0.5), f"{name}_p99_ms": p(name, 0.99)}
    return Figure("intent", round(ratio, 2), line, details)
