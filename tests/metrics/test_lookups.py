"""Lookups, DND refusals and call details counted by the metrics service, from the facts
the executor really publishes (its service layer with the fake Exotel; its details fact
from Exotel's own samples)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from contracts.commands import CallConnect, NumberLookup
from contracts.results import CommandResult
from services.executor.details import Fetched, details_fact
from services.executor.service import Account
from services.exotel._payload import load_payload
from services.exotel.models import CallDetails
from services.metrics.metrics import FactMetrics
from services.metrics.recorder import FactRecorder
from tests.exotel.conftest import sample
from tests.support.exotel import FakeExotel, executor, metadata

IST = ZoneInfo("Asia/Kolkata")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def recorder(registry: CollectorRegistry) -> FactRecorder:
    return FactRecorder(FactMetrics(registry))


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def as_published(result: CommandResult) -> bytes:
    return result.model_dump_json().encode()


async def test_lookups_are_counted_as_cache_hits_or_requests(
    recorder: FactRecorder, registry: CollectorRegistry
) -> None:
    service = executor(FakeExotel())
    for command_id in ("n-1", "n-2", "n-3"):
        command = NumberLookup.model_validate({"command_id": command_id, "number": "09812345678"})
        result = await service.execute(command, command_type="number.lookup")
        recorder.record("number.lookup.result", as_published(result))
    recorder.record("number.lookup.result", as_published(result))  # delivered twice

    lookups = {"command_type": "number.lookup", "account": "default"}
    assert value(registry, "voicebus_number_lookups_total", **lookups, source="exotel") == 1
    assert value(registry, "voicebus_number_lookups_total", **lookups, source="cache") == 2


async def test_a_dnd_refusal_is_counted_with_the_dnd_check_lookup(
    recorder: FactRecorder, registry: CollectorRegistry
) -> None:
    exotel = FakeExotel().answer("number_metadata", metadata("Yes"))
    service = executor(exotel)
    service.accounts = {"default": Account("default", "v1", exotel, dnd_check=True)}
    command = CallConnect.model_validate(
        {"command_id": "c-1", "from": "+919876543210", "to": "+919812347777", "caller_id": "0804"}
    )
    result = await service.execute(command, command_type="call.connect")
    assert recorder.record("call.connect.result", as_published(result)) == "counted"

    assert value(registry, "voicebus_dnd_rejections_total", account="default") == 1
    assert (
        value(
            registry,
            "voicebus_number_lookups_total",
            command_type="call.connect",
            account="default",
            source="exotel",
        )
        == 1
    )
    errors = {"command_type": "call.connect", "code": "dnd_blocked"}
    assert value(registry, "voicebus_command_errors_total", **errors) == 1


def test_call_details_are_counted_once_by_source_and_api(
    recorder: FactRecorder, registry: CollectorRegistry
) -> None:
    payload = load_payload(sample("v1_call_details_details_corrected.json"))
    call = CallDetails.from_v1_response(payload, IST)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    polled = details_fact(Fetched(call), source="poll", account="default", fetched_at=now)
    unpriced = details_fact(
        Fetched(call.model_copy(update={"price": None})),
        source="backfill",
        account="default",
        fetched_at=now,
        lookup_id="lk-1",
    )
    for fact in (polled, polled, unpriced):
        recorder.record("call.details", fact.model_dump_json(by_alias=True).encode())

    assert value(registry, "voicebus_call_details_total", source="poll", api="v1") == 1
    assert value(registry, "voicebus_call_details_total", source="backfill", api="v1") == 1
    assert value(registry, "voicebus_call_details_unpriced_total", source="backfill") == 1
    assert value(registry, "voicebus_call_details_unpriced_total", source="poll") == 0
    assert value(registry, "voicebus_metrics_duplicates_total", topic="call.details") == 1
    assert recorder.record("call.details", b"{not json") == "unreadable"
