"""The spool (files) and the spooling outlet (Kafka first, spool behind, ordered replay)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from contracts.status import CallStatusEvent
from services.ingress.metrics import IngressMetrics
from services.ingress.sinks import SinkUnavailable
from services.ingress.spool import REJECTED_FILE, Spool, SpoolRecord
from services.ingress.spooling import SpoolingOutlet
from tests.support.facts import wait_until


def record(key: str | None, n: int, topic: str = "call.status") -> SpoolRecord:
    return SpoolRecord(
        topic=topic,
        key=key.encode() if key is not None else None,
        value=json.dumps({"n": n}).encode(),
        headers={"ce_id": f"{key}-{n}"},
    )


# --------------------------------------------------------------------------- files


def test_record_lines_round_trip_text_and_bytes() -> None:
    text = record("CA1", 1)
    raw = SpoolRecord(topic="call.status.dlq", key=None, value=b"\xff\x00{", headers={})
    for original in (text, raw):
        line = original.to_line()
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        assert SpoolRecord.from_line(line) == original


def test_append_read_advance_and_delete(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4096)
    spool.open()
    lines = [record("CA1", n).to_line() for n in range(100)]
    spool.append(lines[:60])
    spool.append(lines[60:])
    assert spool.depth == 100
    assert len(spool.segment_files()) > 1  # rotated past segment_bytes
    items = spool.read(30)
    assert [i.line for i in items] == lines[:30]
    spool.advance(items[-1].end, 30)
    assert spool.depth == 70
    assert [i.line for i in spool.read(1000)] == lines[30:]
    rest = spool.read(1000)
    spool.advance(rest[-1].end, len(rest))
    assert spool.depth == 0
    assert spool.segment_files() == []  # caught up: nothing kept
    spool.append([lines[0]])
    assert [i.line for i in spool.read(10)] == [lines[0]]
    spool.close()


def test_restart_resumes_after_the_replayed_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=2048)
    spool.open()
    lines = [record("CA1", n).to_line() for n in range(50)]
    spool.append(lines)
    items = spool.read(20)
    spool.advance(items[-1].end, 20)
    spool.close()

    again = Spool(tmp_path, segment_bytes=2048)
    again.open()
    assert again.depth == 30
    assert [i.line for i in again.read(100)] == lines[20:]
    again.append([record("CA2", 0).to_line()])
    assert again.read(100)[-1].line == record("CA2", 0).to_line()
    again.close()


def test_a_torn_last_line_is_cut_off(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append([record("CA1", 1).to_line()])
    spool.close()
    [segment] = spool.segment_files()
    with segment.open("ab") as handle:
        handle.write(b'{"topic":"call.status","key":"CA1","val')  # crash mid-write
    again = Spool(tmp_path)
    again.open()
    assert again.depth == 1
    assert [i.line for i in again.read(10)] == [record("CA1", 1).to_line()]
    assert segment.read_bytes().endswith(b"\n")
    again.close()


def test_unreadable_position_replays_everything(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append([record("CA1", n).to_line() for n in range(3)])
    spool.close()
    (tmp_path / "position.json").write_text("{not json")
    again = Spool(tmp_path)
    again.open()
    assert again.depth == 3  # duplicates rather than losses
    again.close()


def test_append_on_a_closed_spool_fails(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(OSError, match="closed"):
        spool.append([record("CA1", 1).to_line()])


# --------------------------------------------------------------------------- the outlet


@dataclass
class FakeKafka:
    """A RecordProducer whose availability the test switches; keeps what it acknowledged."""

    up: bool = True
    delay: float = 0.0
    fail_keys: set[bytes] = field(default_factory=set)
    too_large: set[bytes] = field(default_factory=set)
    acked: list[SpoolRecord] = field(default_factory=list)
    connects: int = 0
    #: the size of each send: 1 for ``send``, the group's for ``send_group``
    sends: list[int] = field(default_factory=list)

    async def connect(self) -> None:
        if not self.up:
            raise KafkaConnectionError("down")
        self.connects += 1

    async def send(self, rec: SpoolRecord) -> Awaitable[object]:
        if rec.value in self.too_large:
            raise MessageSizeTooLargeError("too large")
        if not self.up:
            raise KafkaConnectionError("down")
        self.sends.append(1)
        return asyncio.ensure_future(self._deliver([rec]))

    async def send_group(self, records: Sequence[SpoolRecord]) -> Awaitable[object]:
        """One batch: all of the group is acknowledged, or none of it."""
        if any(rec.value in self.too_large for rec in records):
            raise MessageSizeTooLargeError("too large")
        if not self.up:
            raise KafkaConnectionError("down")
        self.sends.append(len(records))
        return asyncio.ensure_future(self._deliver(list(records)))

    async def _deliver(self, records: list[SpoolRecord]) -> None:
        await asyncio.sleep(self.delay)
        if not self.up or any(rec.key in self.fail_keys for rec in records):
            raise KafkaConnectionError("lost")
        self.acked.extend(records)

    async def stop(self) -> None:
        pass


def outlet_for(kafka: FakeKafka, tmp_path: Path) -> tuple[SpoolingOutlet, IngressMetrics]:
    metrics = IngressMetrics(CollectorRegistry())
    outlet = SpoolingOutlet(
        kafka,
        Spool(tmp_path / "spool", segment_bytes=4096),
        metrics=metrics,
        spool_after_seconds=0.2,
        connect_timeout_seconds=1,
        ack_timeout_seconds=2,
    )
    return outlet, metrics


def values_of(records: list[SpoolRecord], key: str) -> list[int]:
    return [json.loads(r.value)["n"] for r in records if r.key == key.encode()]


async def test_direct_when_kafka_answers(tmp_path: Path) -> None:
    kafka = FakeKafka()
    outlet, metrics = outlet_for(kafka, tmp_path)
    await outlet.start()
    try:
        await wait_until(lambda: outlet.ready, timeout=5, what="connected")
        await outlet.put(record("CA1", 1), order_key="CA1")
        assert values_of(kafka.acked, "CA1") == [1]
        assert outlet.depth == 0
        assert metrics.spooled.labels("call.status")._value.get() == 0
    finally:
        await outlet.stop()


async def test_a_burst_of_one_call_goes_in_order_and_in_groups(tmp_path: Path) -> None:
    """What queues up behind a call's record in flight goes next, as one batch, in order."""
    kafka = FakeKafka(delay=0.02)
    outlet, metrics = outlet_for(kafka, tmp_path)
    await outlet.start()
    try:
        await wait_until(lambda: outlet.ready, timeout=5, what="connected")
        first = asyncio.create_task(outlet.put(record("CA1", 0), order_key="CA1"))
        await wait_until(lambda: kafka.sends == [1], timeout=5, what="the first in flight")
        rest = [outlet.put(record("CA1", n), order_key="CA1") for n in range(1, 40)]
        await asyncio.gather(first, *rest)
        assert values_of(kafka.acked, "CA1") == list(range(40))
        assert kafka.sends == [1, 39]  # the first alone, what queued behind it together
        assert outlet.depth == 0
        assert metrics.spooled.labels("call.status")._value.get() == 0
    finally:
        await outlet.stop()


async def test_a_burst_of_one_call_whose_group_times_out_is_spooled_whole(tmp_path: Path) -> None:
    """A group Kafka does not acknowledge in time goes to the spool, all of it, in order;
    the records behind it follow it there; the replay keeps the order."""
    kafka = FakeKafka(delay=0.5)  # slower than the 0.2 s callbacks wait
    outlet, _ = outlet_for(kafka, tmp_path)
    await outlet.start()
    try:
        await wait_until(lambda: outlet.ready, timeout=5, what="connected")
        await asyncio.gather(*(outlet.put(record("CA1", n), order_key="CA1") for n in range(10)))
        assert outlet.depth == 10
        kafka.delay = 0.0
        await wait_until(lambda: outlet.depth == 0, timeout=10, what="replayed")
        await asyncio.sleep(0.6)  # the slow direct delivery lands too (duplicates)
        first_seen: list[int] = []
        for n in values_of(kafka.acked, "CA1"):
            if n not in first_seen:
                first_seen.append(n)
        assert first_seen == list(range(10))
    finally:
        await outlet.stop()


async def test_spooled_while_kafka_is_down_then_replayed_in_order(tmp_path: Path) -> None:
    kafka = FakeKafka(up=False)
    outlet, metrics = outlet_for(kafka, tmp_path)
    await outlet.start()
    try:
        for n in range(5):
            await asyncio.gather(
                outlet.put(record("CA1", n), order_key="CA1"),
                outlet.put(record("CA2", n), order_key="CA2"),
            )
        assert outlet.depth == 10
        assert outlet.status()["kafka"] == "unavailable"
        assert metrics.spool_depth._value.get() == 10
        kafka.up = True
        await wait_until(lambda: outlet.depth == 0, timeout=10, what="replayed")
        assert values_of(kafka.acked, "CA1") == [0, 1, 2, 3, 4]
        assert values_of(kafka.acked, "CA2") == [0, 1, 2, 3, 4]
        assert metrics.replayed.labels("call.status")._value.get() == 10
        assert outlet.ready
        await outlet.put(record("CA1", 5), order_key="CA1")  # direct again
        assert values_of(kafka.acked, "CA1")[-1] == 5
    finally:
        await outlet.stop()


async def test_a_slow_kafka_spools_and_later_callbacks_queue_behind(tmp_path: Path) -> None:
    kafka = FakeKafka(delay=1.0)
    outlet, _ = outlet_for(kafka, tmp_path)
    await outlet.start()
    try:
        await wait_until(lambda: outlet.ready, timeout=5, what="connected")
        await outlet.put(record("CA1", 0), order_key="CA1")  # times out after 0.2 s: spooled
        assert outlet.depth == 1
        kafka.delay = 0.0
        await outlet.put(record("CA1", 1), order_key="CA1")  # spool not empty: behind it
        await wait_until(lambda: outlet.depth == 0, timeout=10, what="replayed")
        await asyncio.sleep(1.1)  # the slow first delivery lands too (a duplicate)
        first_seen: list[int] = []
        for n in values_of(kafka.acked, "CA1"):
            if n not in first_seen:
                first_seen.append(n)
        assert first_seen == [0, 1]
    finally:
        await outlet.stop()


async def test_a_failing_call_never_lets_its_later_records_overtake(tmp_path: Path) -> None:
    kafka = FakeKafka(up=False)
    outlet, _ = outlet_for(kafka, tmp_path)
    await outlet.start()
    try:
        for n in range(3):
            await outlet.put(record("BAD", n), order_key="BAD")
            await outlet.put(record("OK", n), order_key="OK")
        kafka.fail_keys = {b"BAD"}
        kafka.up = True
        await wait_until(
            lambda: values_of(kafka.acked, "OK")[-1:] == [2], timeout=10, what="OK replayed"
        )
        assert values_of(kafka.acked, "BAD") == []
        assert outlet.depth == 6  # the head (BAD 0) is not in Kafka: nothing advances
        kafka.fail_keys = set()
        await wait_until(lambda: outlet.depth == 0, timeout=10, what="replayed")
        assert values_of(kafka.acked, "BAD") == [0, 1, 2]
    finally:
        await outlet.stop()


async def test_records_kafka_refuses_for_good_are_set_aside(tmp_path: Path) -> None:
    kafka = FakeKafka(up=False)
    outlet, metrics = outlet_for(kafka, tmp_path)
    await outlet.start()
    try:
        poison = record("CA1", 0)
        kafka.too_large = {poison.value}
        await outlet.put(poison, order_key="CA1")
        await outlet.put(record("CA1", 1), order_key="CA1")
        kafka.up = True
        await wait_until(lambda: outlet.depth == 0, timeout=10, what="replayed")
        assert values_of(kafka.acked, "CA1") == [1]
        assert metrics.spool_rejected._value.get() == 1
        assert (tmp_path / "spool" / REJECTED_FILE).read_bytes() == poison.to_line()
    finally:
        await outlet.stop()


async def test_spool_survives_a_restart_of_the_outlet(tmp_path: Path) -> None:
    kafka = FakeKafka(up=False)
    outlet, _ = outlet_for(kafka, tmp_path)
    await outlet.start()
    await outlet.put(record("CA1", 0), order_key="CA1")
    await outlet.put(record("CA1", 1), order_key="CA1")
    await outlet.stop()

    kafka.up = True
    again, _ = outlet_for(kafka, tmp_path)
    await again.start()
    try:
        await wait_until(lambda: again.depth == 0, timeout=10, what="replayed at start")
        assert values_of(kafka.acked, "CA1") == [0, 1]
    finally:
        await again.stop()


async def test_an_unwritable_spool_is_503(tmp_path: Path) -> None:
    kafka = FakeKafka(up=False)
    outlet, _ = outlet_for(kafka, tmp_path)
    await outlet.start()
    try:
        await asyncio.to_thread(outlet._spool.close)  # e.g. the disk went away
        with pytest.raises(SinkUnavailable, match="spool"):
            await outlet.put(record("CA1", 0), order_key="CA1")
    finally:
        await outlet.stop()


async def test_a_passthrus_facts_spool_sooner_than_callbacks(tmp_path: Path) -> None:
    kafka = FakeKafka(delay=0.6)  # slower than either wait
    outlet, _ = outlet_for(kafka, tmp_path)  # callbacks wait 0.2 s for Kafka, this one 0.05 s
    await outlet.start()
    try:
        await wait_until(lambda: outlet.ready, timeout=5, what="connected")
        flow_facts = outlet.facts_within(0.05)
        event = CallStatusEvent(
            event_id="e-1",
            call_sid="CA9",
            event_type="flow",
            status="unknown",
            api="passthru",
            received_at=datetime.now(UTC),
            raw={"CallSid": "CA9"},
        )
        started = time.monotonic()
        await flow_facts.put(event)
        elapsed = time.monotonic() - started
        assert outlet.depth == 1, "spooled: durable without Kafka's ack"
        assert elapsed < 0.2, "before a callback would even have given up on Kafka"
        await wait_until(lambda: outlet.depth == 0, timeout=10, what="replayed")
        assert any(r.key == b"CA9" for r in kafka.acked)
    finally:
        await outlet.stop()
