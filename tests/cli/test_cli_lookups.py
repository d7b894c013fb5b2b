"""``voicebus lookup`` and ``voicebus details`` without a broker: what is refused before
anything is published (exit 2), and how answers are printed (tables)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from contracts.details import CallDetails as CallDetailsFact
from services.cli.exits import Exit
from services.cli.output import calls_table, details_table, number_table
from services.common.processes import free_port
from services.executor.commands.number_lookup import number_info
from services.executor.details import Fetched, details_fact
from services.executor.numbers import CachedNumber
from services.exotel._payload import load_payload
from services.exotel.models import CallDetails, CompletedCallLeg
from tests.cli.helpers import invoke
from tests.exotel.conftest import sample
from tests.support.exotel import metadata

IST = ZoneInfo("Asia/Kolkata")


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str | None]:
    """No Kafka: an exit 2 proves the command was refused before anything was tried."""
    monkeypatch.chdir(tmp_path)
    return {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lookup", "98123 45678"], "invalid field 'number'"),
        (["lookup", "sip:agent@example.com"], "invalid field 'number'"),
        (["details"], "give a CALL_SID, or a filter"),
        (["details", "abc", "--since", "1d"], "not both"),
        (["details", "--since", "earliest"], "give a time, not earliest"),
        (["details", "--since", "yesterday-ish"], "--since"),
        (["details", "--until", "1h"], "invalid field 'filter.until'"),
        (["details", "--since", "40d", "--until", "1h"], "at most one month"),
        (["details", "--status", "answered"], "invalid field 'filter.status.0'"),
        (["details", *[a for i in range(6) for a in ("--to", f"+9198123456{i:02}")]], "filter.to"),
        (["details", "--api", "v3", "--since", "1d"], "'api' names the API of one call"),
        (["details", "bad sid!"], "invalid field 'call_sid'"),
    ],
)
def test_a_lookup_the_executor_would_refuse_is_never_published(
    nowhere: dict[str, str | None], args: list[str], message: str
) -> None:
    result = invoke(args, env=nowhere)
    assert result.exit_code == Exit.USAGE, result.output
    assert message in " ".join(result.stderr.split())
    assert result.stdout == ""


def test_help_names_the_lookup_commands() -> None:
    result = invoke(["--help"])
    assert result.exit_code == 0
    assert "lookup" in result.output
    assert "details" in result.output


def test_a_number_prints_as_a_table() -> None:
    moment = datetime(2025, 1, 2, 9, 30, tzinfo=IST)
    info = number_info("+919812347777", CachedNumber(metadata("Yes"), moment), cached=True)
    lines = number_table(info).splitlines()
    assert lines[0].split() == ["number", "+919812347777"]
    assert lines[2].split() == ["DND", "yes"]
    assert "GJ (Gujarat Telecom Circle" in lines[4]
    assert lines[-1].endswith("2025-01-02 09:30:00+05:30 (served from the cache)")


def v1_fact(**changes: object) -> CallDetailsFact:
    call = CallDetails.from_v1_response(
        load_payload(sample("v1_call_details_details_corrected.json")), IST
    )
    legs = CompletedCallLeg.list_from(load_payload(sample("completed_call_legs.json")), IST)
    fact = details_fact(
        Fetched(call, completed_legs=legs),
        source="lookup",
        account="default",
        fetched_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    return fact.model_copy(update=changes)


def test_one_calls_details_print_with_their_legs() -> None:
    text = details_table(v1_fact())
    assert "price        1.500" in text
    assert "answered by  human" in text
    assert "legs (legs_api):" in text
    assert text.splitlines()[-1].split() == [
        "2",
        "outbound-dial",
        "XXXXXXXXXXXXXX",
        "completed",
        "4",
    ]


def test_a_backfill_prints_one_line_per_call() -> None:
    text = calls_table([v1_fact(), v1_fact(call_sid="second", price=None)])
    header, first, second = text.splitlines()
    assert header.split()[:3] == ["call", "sid", "created"]
    assert first.split()[0] == "b6cfaf5f5cef3ca0fc937749ef96d245"
    assert first.split()[-1] == "1.500"
    assert second.split()[0] == "second"
    assert second.split()[-1] == "-"
