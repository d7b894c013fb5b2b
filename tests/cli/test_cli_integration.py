"""``voicebus`` against a real broker and a running voicebus (sandbox, ingress, executor)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contracts.topics import ALL_TOPICS, CALL_CONNECT
from services.cli.exits import Exit
from tests.cli.helpers import ainvoke
from tests.integration.stack import Stack, publish, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stack(kafka_env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(kafka_env) as running:
        yield running


@pytest.fixture
def env(kafka_env: dict[str, str], stack: Stack) -> dict[str, str | None]:
    return {"KAFKA_BOOTSTRAP_SERVERS": kafka_env["KAFKA_BOOTSTRAP_SERVERS"]}


def connect_fields(**fields: str) -> list[str]:
    merged = {"from": "+919876543210", "to": "+919812345678", "caller_id": "08047112345", **fields}
    return [arg for name, value in merged.items() for arg in ("-F", f"{name}={value}")]


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_topics_check_finds_every_topic(env: dict[str, str | None]) -> None:
    result = await ainvoke(["topics", "--check", "--json"], env=env)
    assert result.exit_code == Exit.OK, result.output
    rows = json_lines(result.stdout)
    assert [r["topic"] for r in rows] == list(ALL_TOPICS)
    assert all(r["exists"] and r["partitions"] >= 1 for r in rows)


async def test_topics_check_names_a_missing_topic(
    env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.cli.app.ALL_TOPICS", (*ALL_TOPICS, "voicebus.not-there"))
    result = await ainvoke(["topics", "--check"], env=env)
    assert result.exit_code == Exit.FAILED
    assert "voicebus.not-there" in result.stdout
    assert "1 topic(s) missing: voicebus.not-there" in result.stderr


async def test_send_prints_the_accepted_result_and_tail_shows_its_facts(
    env: dict[str, str | None],
) -> None:
    command_id = f"cli-it-{uuid.uuid4().hex[:10]}"
    sent = await ainvoke(
        ["send", "call.connect", "--command-id", command_id, *connect_fields(), "--timeout", "45"],
        env=env,
    )
    assert sent.exit_code == Exit.OK, sent.output
    assert "call.connect.result: accepted" in sent.stdout
    assert f"command_id    {command_id}" in sent.stdout
    assert "call_sid" in sent.stdout
    assert f"published call.connect {command_id}" in sent.stderr
    call_sid = next(
        line.split()[1] for line in sent.stdout.splitlines() if line.strip().startswith("call_sid")
    )

    tailed = await ainvoke(
        [
            "tail",
            "--command-id",
            command_id,
            "--event-type",
            "result",
            "--event-type",
            "terminal",
            "--count",
            "2",
            "--timeout",
            "45",
            "--json",
        ],
        env=env,
    )
    assert tailed.exit_code == Exit.OK, tailed.output
    facts = json_lines(tailed.stdout)
    assert {f["topic"] for f in facts} == {"call.connect.result", "call.status"}
    for fact in facts:
        assert fact["value"]["call_sid"] == call_sid
        assert fact["key"] == call_sid
    status = next(f for f in facts if f["topic"] == "call.status")
    assert status["value"]["event_type"] == "terminal"
    assert status["headers"]["ce_specversion"] == "1.0"

    pretty = await ainvoke(
        ["tail", "--call-sid", call_sid, "--no-follow", "--since", "earliest"], env=env
    )
    assert pretty.exit_code == Exit.OK, pretty.output
    assert "accepted" in pretty.stdout
    assert "terminal:completed" in pretty.stdout


async def test_send_json_output_and_a_rejection_exits_1(env: dict[str, str | None]) -> None:
    result = await ainvoke(
        ["send", "call.connect", "--json", *connect_fields(api="v3", **{"from": "+919876549999"})],
        env=env,
    )
    assert result.exit_code == Exit.FAILED, result.output
    (line,) = json_lines(result.stdout)
    assert line["outcome"] == "rejected"
    assert line["error"]["exotel_code"] == "10706"


async def test_send_from_a_file_on_stdin(env: dict[str, str | None]) -> None:
    command = {
        "command_id": f"cli-file-{uuid.uuid4().hex[:8]}",
        "from": "+919876543210",
        "to": "+919812345678",
        "caller_id": "08047112345",
        "api": "v3",
        "record": True,
    }
    result = await ainvoke(
        ["send", "call.connect", "-f", "-", "--json"], env=env, stdin=json.dumps(command)
    )
    assert result.exit_code == Exit.OK, result.output
    (line,) = json_lines(result.stdout)
    assert line["command_id"] == command["command_id"]
    assert line["api"] == "v3"


async def test_no_result_in_time_exits_3(env: dict[str, str | None], stack: Stack) -> None:
    stack.sandbox.control.add_fault(match="connect", method="POST", delay_seconds=4, count=1)
    try:
        result = await ainvoke(
            ["send", "call.connect", *connect_fields(), "--timeout", "1"], env=env
        )
    finally:
        await asyncio.sleep(4)  # let the delayed request finish before clearing
        stack.sandbox.control.clear_faults()
    assert result.exit_code == Exit.TIMEOUT, result.output
    assert "no result for command" in result.stderr
    assert "voicebus tail --command-id" in result.stderr


async def test_dlq_lists_an_unreadable_command_and_republishes_it_after_a_fix(
    env: dict[str, str | None], kafka_env: dict[str, str]
) -> None:
    marker = uuid.uuid4().hex[:10]
    broken = {"from": "+919876543210", "to": "+919812345678", "caller_id": "08047112345"}
    broken["custom_field"] = marker
    await publish(
        kafka_env["KAFKA_BOOTSTRAP_SERVERS"],
        CALL_CONNECT,
        broken,
        key=f"k-{marker}",
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )

    entry: dict[str, Any] | None = None
    for _ in range(60):  # the executor dead-letters it within a few seconds
        listed = await ainvoke(["dlq", "list", "--topic", "call.connect", "--json"], env=env)
        assert listed.exit_code == Exit.OK, listed.output
        entry = next(
            (e for e in json_lines(listed.stdout) if marker in json.dumps(e["value"])), None
        )
        if entry is not None:
            break
        await asyncio.sleep(0.5)
    assert entry is not None, "the unreadable command never reached call.connect.dlq"
    assert entry["id"].startswith("call.connect.dlq:")
    assert "command_id" in entry["headers"]["error"]
    assert entry["headers"]["origin_topic"] == CALL_CONNECT

    pretty = await ainvoke(["dlq", "list", "--topic", "call.connect", "--check"], env=env)
    assert pretty.exit_code == Exit.FAILED  # --check: there are dead letters
    assert entry["id"] in pretty.stdout
    assert "error:" in pretty.stdout

    unfixed = await ainvoke(["dlq", "republish", entry["id"]], env=env)
    assert unfixed.exit_code == Exit.USAGE
    assert "still unreadable" in unfixed.stderr

    command_id = f"fixed-{marker}"
    fixed = await ainvoke(
        ["dlq", "republish", entry["id"], "-F", f"command_id={command_id}"], env=env
    )
    assert fixed.exit_code == Exit.OK, fixed.output
    assert f"re-published {entry['id']} -> call.connect:" in fixed.stderr

    tailed = await ainvoke(
        [
            *("tail", "--command-id", command_id, "--event-type", "result"),
            *("--count", "1", "--timeout", "45", "--json"),
        ],
        env=env,
    )
    assert tailed.exit_code == Exit.OK, tailed.output
    (result,) = json_lines(tailed.stdout)
    assert result["value"]["outcome"] == "accepted"
    assert result["value"]["command_id"] == command_id
    assert result["headers"]["traceparent"].startswith("00-0af7651916cd43dd")


async def test_lookup_prints_a_numbers_metadata_and_json_for_scripts(
    env: dict[str, str | None],
) -> None:
    pretty = await ainvoke(["lookup", "+919812347777", "--timeout", "45"], env=env)
    assert pretty.exit_code == Exit.OK, pretty.output
    assert "number.lookup.result: accepted" in pretty.stdout
    assert "DND           yes" in pretty.stdout
    again = await ainvoke(["lookup", "09812347777", "--json"], env=env)
    assert again.exit_code == Exit.OK, again.output
    (result,) = json_lines(again.stdout)
    assert result["number"]["cached"] is True


async def test_details_print_one_call_and_a_backfill_its_calls(env: dict[str, str | None]) -> None:
    to = f"+9198{uuid.uuid4().int % 10**4:04d}4321"
    sent = await ainvoke(["send", "call.connect", "--json", *connect_fields(to=to)], env=env)
    assert sent.exit_code == Exit.OK, sent.output
    call_sid = json_lines(sent.stdout)[0]["call_sid"]
    ended = await ainvoke(
        [
            "tail",
            "--call-sid",
            call_sid,
            "--event-type",
            "terminal",
            "--count",
            "1",
            "--timeout",
            "30",
        ],
        env=env,
    )
    assert ended.exit_code == Exit.OK, ended.output

    one = await ainvoke(["details", call_sid, "--timeout", "45"], env=env)
    assert one.exit_code == Exit.OK, one.output
    assert f"call sid     {call_sid}" in one.stdout
    assert "legs (legs_api):" in one.stdout

    backfill = await ainvoke(
        ["details", "--since", "15m", "--to", to, "--status", "completed", "--json"], env=env
    )
    assert backfill.exit_code == Exit.OK, backfill.output
    *facts, result = json_lines(backfill.stdout)
    assert [f["call_sid"] for f in facts] == [call_sid]
    assert facts[0]["source"] == "backfill"
    assert (result["command_type"], result["lookup"]["calls"]) == ("call.lookup", 1)
    assert "1 call(s) in 1 page(s)" in backfill.stderr
