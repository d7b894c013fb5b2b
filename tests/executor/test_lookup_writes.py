"""A call.lookup through the executor's pipeline, with write lanes that keep what they
were given: its call.details facts go through the lane of the partition the command came
from, with the command's next ledger write (a backfill's page with the checkpoint after
it, the rest before the outcome), so where the broker has transactions they commit in
the partition's transaction with it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from contracts.details import CallDetails as CallDetailsFact
from contracts.topics import CALL_DETAILS, CALL_LOOKUP, CALL_LOOKUP_RESULT
from services.executor.commands.run import Interrupted
from services.executor.incoming import IncomingCommand
from services.executor.ledger import CommandLedger, LedgerEntry
from services.executor.metrics import ExecutorMetrics
from services.executor.pipeline import CommandPipeline
from services.executor.state.records import INDEX_TOPIC, LEDGER_TOPIC, Record
from services.executor.state.store import StateStore
from services.exotel._payload import load_payload
from services.exotel.models import BulkPage, CallDetails
from tests.exotel.conftest import sample
from tests.support.exotel import FakeExotel, executor
from tests.support.lanes import RecordingLanes

IST = ZoneInfo("Asia/Kolkata")
PARTITION = 3
RECENT = {"since": (datetime.now(UTC) - timedelta(days=2)).isoformat()}


def v1_call(sid: str) -> CallDetails:
    payload = load_payload(sample("v1_call_details_details_corrected.json"))
    return CallDetails.from_v1_response(payload, IST).model_copy(update={"call_sid": sid})


def page(*sids: str, next_uri: str | None = None) -> BulkPage:
    return BulkPage(calls=[v1_call(sid) for sid in sids], next_uri=next_uri)


def command(**fields: Any) -> IncomingCommand:
    return IncomingCommand(
        topic=CALL_LOOKUP,
        partition=PARTITION,
        offset=7,
        key=b"lk-1",
        value=json.dumps({"command_id": "lk-1", **fields}).encode(),
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        timestamp_ms=None,
    )


def pipeline(
    exotel: FakeExotel, **kw: Any
) -> tuple[CommandPipeline, CommandLedger, RecordingLanes]:
    lanes = RecordingLanes()
    ledger = CommandLedger(StateStore(None), lanes)
    run = CommandPipeline(
        service=executor(exotel),
        metrics=ExecutorMetrics(CollectorRegistry()),
        stopping=lambda: False,
        ledger=ledger,
        lanes=lanes,
        **kw,
    )
    return run, ledger, lanes


def shape(records: list[Record]) -> list[str]:
    """Each record as ``topic`` (call.details: ``call.details:<sid>``; ledger records:
    ``ledger:<state>``)."""
    out = []
    for record in records:
        if record.topic == CALL_DETAILS:
            out.append(f"details:{CallDetailsFact.model_validate_json(record.value).call_sid}")
        elif record.topic == LEDGER_TOPIC:
            out.append(f"ledger:{LedgerEntry.model_validate_json(record.value).state}")
        elif record.topic == INDEX_TOPIC:
            out.append("index")
        else:
            out.append(record.topic)
    return out


async def test_one_calls_details_go_through_the_commands_lane_before_its_outcome() -> None:
    sid = "b6cfaf5f5cef3ca0fc937749ef96d245"
    exotel = FakeExotel().answer("call_details", v1_call(sid))
    run, _, lanes = pipeline(exotel)
    await run.process(command(call_sid=sid))
    assert list(lanes.lanes) == [PARTITION], "the partition the command came from"
    lane = lanes.lanes[PARTITION]
    assert shape(lane.written) == [f"details:{sid}", "ledger:done", "index", CALL_LOOKUP_RESULT]
    details = lane.written[0]
    assert details.key == sid.encode()
    headers = {name: value.decode() for name, value in details.headers}
    assert headers["ce_type"] == "voicebus.call.details"
    assert headers["ce_id"] == CallDetailsFact.model_validate_json(details.value).details_id
    assert headers["traceparent"].startswith("00-0af7651916cd43dd")


async def test_a_backfills_pages_are_written_with_the_checkpoint_after_them() -> None:
    exotel = (
        FakeExotel()
        .answer("bulk_page", page("c1", "c2", next_uri="/p2"))
        .answer("bulk_page", page("c3"), sid="/p2")
    )
    run, ledger, lanes = pipeline(exotel)
    await run.process(command(filter=RECENT))
    assert shape(lanes.lanes[PARTITION].written) == [
        "ledger:intent",  # checkpoint: page 1
        "index",
        "details:c1",
        "details:c2",
        "ledger:intent",  # checkpoint: /p2, 2 calls
        "index",
        "details:c3",  # the last page: with the outcome
        "ledger:done",
        "index",
        CALL_LOOKUP_RESULT,
    ]
    entry = await ledger.find("call.lookup", "lk-1", partition=PARTITION)
    assert entry is not None
    assert entry.result is not None
    assert entry.result.lookup is not None
    assert entry.result.lookup.calls == 3


async def test_a_backfill_stopped_between_pages_has_written_only_checkpointed_pages() -> None:
    exotel = (
        FakeExotel()
        .answer("bulk_page", page("c1", next_uri="/p2"))
        .answer("bulk_page", page("c2", next_uri="/p3"), sid="/p2")
    )
    owned = [True]
    run, ledger, lanes = pipeline(exotel, owns=lambda _topic, _partition: owned[0])
    original = exotel.bulk_page

    async def revoked_after_the_second_page(*args: Any, **kwargs: Any) -> BulkPage:
        answer = await original(*args, **kwargs)
        if kwargs.get("page_uri") == "/p2":
            owned[0] = False
        return answer

    exotel.bulk_page = revoked_after_the_second_page  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        await run.process(command(filter=RECENT))
    written = shape(lanes.lanes[PARTITION].written)
    assert written == [
        "ledger:intent",
        "index",
        "details:c1",
        "ledger:intent",
        "index",
        "details:c2",
        "ledger:intent",
        "index",
    ], "each page with its checkpoint; no result"
    entry = await ledger.find("call.lookup", "lk-1", partition=PARTITION)
    assert entry is not None
    assert (entry.state, entry.evidence["next"], entry.evidence["calls"]) == ("intent", "/p3", "2")
