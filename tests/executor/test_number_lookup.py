"""number.lookup, every outcome, through the executor's service layer with the fake Exotel:
a lookup, the cache (per account and number, for its TTL), refusals, retries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.commands import NumberLookup
from contracts.decoding import InvalidCommand, decode_command
from contracts.results import CommandResult
from services.executor.commands.number_lookup import number_info
from services.executor.numbers import CachedNumber, NumberCache, cache_key
from services.executor.service import Account, CommandService
from tests.support.exotel import (
    FakeExotel,
    executor,
    metadata,
    rejected,
    server_error,
)

CUSTOMER = "+919812345678"


def lookup(number: str = CUSTOMER, **fields: Any) -> NumberLookup:
    return NumberLookup.model_validate({"command_id": "n-1", "number": number, **fields})


async def run(service: CommandService, command: NumberLookup | InvalidCommand) -> CommandResult:
    return await service.execute(command, command_type="number.lookup")


async def test_a_number_is_looked_up_once_through_a_get_without_an_intent() -> None:
    exotel = FakeExotel().answer("number_metadata", metadata("Yes"))
    result = await run(executor(exotel), lookup())

    assert (result.outcome, result.attempts, result.error) == ("accepted", 1, None)
    assert exotel.events == ["number_metadata"], "a read: no slot of the voice family, no intent"
    assert exotel.sent("number_metadata") == [CUSTOMER]
    info = result.number
    assert info is not None
    assert (info.number, info.phone_number, info.circle, info.type) == (
        CUSTOMER,
        "09876543210",
        "GJ",
        "Mobile",
    )
    assert (info.operator, info.operator_name, info.dnd, info.cached) == (
        "R",
        "Reliance",
        "yes",
        False,
    )
    assert result.call_sid is None


async def test_a_repeated_lookup_is_served_from_the_cache_without_a_request() -> None:
    exotel = FakeExotel()
    service = executor(exotel)
    first = await run(service, lookup())
    again = await run(service, lookup(command_id="n-2"))

    assert exotel.operations() == ["number_metadata"]
    assert again.outcome == "accepted"
    assert again.attempts == 0
    assert again.number is not None
    assert first.number is not None
    assert again.number.cached
    assert again.number.looked_up_at == first.number.looked_up_at


async def test_one_number_in_another_spelling_is_the_same_cache_entry() -> None:
    exotel = FakeExotel()
    service = executor(exotel)
    await run(service, lookup("+919812345678"))
    local = await run(service, lookup("09812345678", command_id="n-2"))
    assert local.number is not None
    assert local.number.cached
    assert local.number.number == "09812345678", "the result names the number as asked"
    assert exotel.operations() == ["number_metadata"]


async def test_each_account_has_its_own_cache_entries() -> None:
    default, sales = FakeExotel(), FakeExotel()
    service = executor(default)
    service.accounts = {**service.accounts, "sales": Account("sales", "v1", sales)}
    await run(service, lookup())
    other = await run(service, lookup(command_id="n-2", account="sales"))
    assert other.number is not None
    assert not other.number.cached
    assert (default.operations(), sales.operations()) == (["number_metadata"], ["number_metadata"])


async def test_an_entry_older_than_the_ttl_is_asked_again() -> None:
    now = [0.0]
    exotel = FakeExotel()
    service = executor(exotel, numbers=NumberCache(ttl_seconds=60, clock=lambda: now[0]))
    await run(service, lookup())
    now[0] = 59.0
    assert (await run(service, lookup(command_id="n-2"))).attempts == 0
    now[0] = 61.0
    late = await run(service, lookup(command_id="n-3"))
    assert late.number is not None
    assert not late.number.cached
    assert exotel.operations() == ["number_metadata", "number_metadata"]


async def test_a_zero_ttl_caches_nothing() -> None:
    exotel = FakeExotel()
    service = executor(exotel, numbers=NumberCache(ttl_seconds=0))
    await run(service, lookup())
    await run(service, lookup(command_id="n-2"))
    assert exotel.operations() == ["number_metadata", "number_metadata"]


@pytest.mark.parametrize("answer", ["Unavailable", None, "Maybe"])
async def test_a_dnd_exotel_cannot_tell_is_unavailable(answer: str | None) -> None:
    exotel = FakeExotel().answer("number_metadata", metadata(answer or ""))
    result = await run(executor(exotel), lookup())
    assert result.number is not None
    assert result.number.dnd == "unavailable"


@pytest.mark.parametrize("bad", ["98123 45678", "sip:agent@example.com", "12345", "+91-98123"])
async def test_an_invalid_number_is_rejected_naming_the_field_before_any_request(
    bad: str,
) -> None:
    exotel = FakeExotel()
    decoded = decode_command(
        "number.lookup", f'{{"command_id": "n-1", "number": "{bad}"}}'.encode()
    )
    assert isinstance(decoded, InvalidCommand)
    result = await run(executor(exotel), decoded)
    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.field) == ("invalid_command", "number")
    assert exotel.requests == []


async def test_a_number_exotel_refuses_is_rejected_naming_the_field() -> None:
    exotel = FakeExotel().answer("number_metadata", rejected("Invalid parameter Number"))
    result = await run(executor(exotel), lookup())
    assert result.outcome == "rejected"
    assert result.error is not None
    assert (result.error.code, result.error.field, result.error.http_status) == (
        "exotel_rejected",
        "number",
        400,
    )
    assert result.number is None


async def test_a_lookup_is_retried_after_a_server_error_and_fails_when_they_persist() -> None:
    flaky = FakeExotel().answer("number_metadata", server_error(), metadata())
    assert (await run(executor(flaky), lookup())).attempts == 2

    down = FakeExotel().answer("number_metadata", server_error())
    result = await run(executor(down), lookup())
    assert (result.outcome, result.attempts) == ("failed", 3)
    assert result.error is not None
    assert (result.error.code, result.error.retryable, result.error.field) == (
        "exotel_unavailable",
        True,
        None,
    )


async def test_a_failed_lookup_is_not_cached() -> None:
    exotel = FakeExotel().answer("number_metadata", rejected(), metadata())
    service = executor(exotel)
    assert (await run(service, lookup())).outcome == "rejected"
    assert (await run(service, lookup(command_id="n-2"))).number is not None
    assert exotel.operations() == ["number_metadata", "number_metadata"]


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("+919812345678", "9812345678"),
        ("09812345678", "9812345678"),
        ("9812345678", "9812345678"),
        ("+14155550100", "+14155550100"),
        ("919812345678", "919812345678"),
    ],
)
def test_an_indian_number_has_one_cache_spelling(number: str, key: str) -> None:
    assert cache_key(number) == key


def test_the_result_carries_when_exotel_answered() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    info = number_info(CUSTOMER, CachedNumber(metadata(), moment), cached=True)
    assert info.looked_up_at == moment
