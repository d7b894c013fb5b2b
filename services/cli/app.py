"""The ``voicebus`` command: send commands, look numbers and calls up, follow facts, handle
dead letters, manage topics.

Exit codes (stable, for scripts): 0 accepted / ok; 1 rejected or failed, a check found a
problem; 2 usage or validation error (nothing was published); 3 timeout; 4 Kafka
unreachable or topics missing; 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError

from contracts.catalog import COMMANDS
from contracts.commands import CommandType
from contracts.decoding import InvalidCommand, UnreadableCommand, decode_command
from contracts.results import CommandResult
from contracts.topics import ALL_TOPICS, COMMAND_TOPICS, DLQ_TOPICS, FACT_TOPICS, dlq
from services.cli import asyncapi
from services.cli.config import ConfigError, kafka_settings
from services.cli.exits import Exit
from services.cli.output import (
    RESULT_TOPICS,
    calls_table,
    dead_letter_line,
    details_table,
    fact_line,
    number_table,
    record_json,
    result_block,
)
from services.client import (
    KafkaUnavailable,
    LookupAnswer,
    Published,
    Record,
    ResultTimeout,
    TopicReader,
    TopicsMissing,
    VoicebusClient,
    VoicebusError,
)
from services.client.reader import fetch_record, topic_partitions
from services.common.kafka import ensure_topics
from services.common.kafka_security import KafkaAccessError
from services.common.settings import KafkaSettings
from services.executor.mapping.callbacks import CallbackTarget
from services.ingress.settings import IngressSettings, describe_errors

EXIT_CODES = """\
Exit codes: 0 accepted / ok; 1 rejected or failed, or a check found a problem;
2 usage or validation error (nothing published); 3 timeout; 4 Kafka unreachable or
topics missing; 130 interrupted.

Kafka: --bootstrap, else KAFKA_BOOTSTRAP_SERVERS, else .run/stack.env (`make run`)."""

app = typer.Typer(
    name="voicebus",
    help=f"Drive Exotel calls through voicebus's Kafka topics.\n\n{EXIT_CODES}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
dlq_app = typer.Typer(
    help="Dead letters: messages voicebus could not read, with the reason; re-publish "
    "them after a fix.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(dlq_app, name="dlq")

# DLQ headers the executor adds; a re-published command does not carry them again.
DLQ_HEADERS = frozenset({"error", "origin_topic", "origin_partition", "origin_offset", "failed_at"})
REPUBLISHED_HEADER = "voicebus_republished_from"
NO_SINCE = "earliest"
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class EventType(StrEnum):
    result = "result"
    answered = "answered"
    terminal = "terminal"
    flow = "flow"


class Api(StrEnum):
    v1 = "v1"
    v2 = "v2"
    v3 = "v3"


Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        "-b",
        envvar="KAFKA_BOOTSTRAP_SERVERS",
        show_envvar=True,
        help="Kafka bootstrap servers (default: .run/stack.env written by `make run`).",
    ),
]
JsonOutput = Annotated[
    bool, typer.Option("--json", help="One JSON object a line on stdout (for scripts).")
]
Fields = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        "-F",
        metavar="NAME=VALUE",
        help="Set a field (repeatable; dotted names for nested ones, e.g. streaming.url=...). "
        'VALUE is a string unless it is JSON starting with [ { or " or is null; '
        "numbers and true/false are converted by validation.",
    ),
]


# ── helpers ──────────────────────────────────────────────────────────────────────────────


def info(message: str) -> None:
    """Progress for a person: stderr, so stdout stays parseable."""
    typer.echo(message, err=True)


def fail(code: Exit, message: str) -> NoReturn:
    typer.echo(typer.style(f"voicebus: {message}", fg="red"), err=True)
    raise typer.Exit(int(code))


def settings_for(bootstrap: str | None) -> KafkaSettings:
    try:
        return kafka_settings(bootstrap)
    except ConfigError as exc:
        fail(Exit.USAGE, str(exc))


def run(work: Callable[[], Coroutine[Any, Any, Exit]]) -> None:
    """Run ``work`` and exit with its code; Kafka problems become exit 4."""
    try:
        code = asyncio.run(work())
    except (KafkaUnavailable, TopicsMissing) as exc:
        fail(Exit.KAFKA_UNAVAILABLE, str(exc))
    except KafkaAccessError as exc:  # from topic creation: the setting to fix, named
        fail(Exit.KAFKA_UNAVAILABLE, f"Kafka unreachable: {exc}")
    except VoicebusError as exc:
        fail(Exit.FAILED, str(exc))
    except KeyboardInterrupt:
        info("interrupted")
        raise typer.Exit(int(Exit.INTERRUPTED)) from None
    raise typer.Exit(int(code))


def parse_value(text: str) -> Any:
    if text == "null" or text[:1] in ('"', "[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def apply_fields(data: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    for item in fields:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            fail(Exit.USAGE, f"--field {item!r}: expected NAME=VALUE")
        target = data
        *parents, last = name.strip().split(".")
        for part in parents:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[last] = parse_value(text)
    return data


def parse_headers(items: list[str]) -> dict[str, str]:
    headers = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(Exit.USAGE, f"--header {item!r}: expected NAME=VALUE")
        headers[name.strip()] = value
    return headers


def load_json_object(source: str) -> dict[str, Any]:
    """A JSON object from a file, or from stdin with ``-``."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        fail(Exit.USAGE, f"cannot read {source}: {exc.strerror or exc}")
    try:
        data = json.loads(text)
    except ValueError as exc:
        fail(Exit.USAGE, f"{source} is not JSON: {exc}")
    if not isinstance(data, dict):
        fail(Exit.USAGE, f"{source}: a JSON object was expected, not {type(data).__name__}")
    return data


def validate(topic: str, payload: bytes) -> Any:
    """The executor's own check (contracts/decoding.py); exit 2 when it fails."""
    try:
        decoded = decode_command(topic, payload)
    except UnreadableCommand as exc:
        fail(Exit.USAGE, f"invalid {topic} command: {exc.reason}")
    if isinstance(decoded, InvalidCommand):
        fail(Exit.USAGE, f"invalid {topic} command: {decoded.message}")
    return decoded


DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> datetime | None:
    """``earliest`` -> None; ``now``; ``15m`` / ``2h`` / ``1d`` / ``30s`` ago; ISO 8601."""
    text = text.strip().lower()
    if text in ("earliest", "beginning", "all"):
        return None
    now = datetime.now(UTC)
    if text == "now":
        return now
    match = DURATION.match(text)
    if match:
        return now - timedelta(**{UNITS[match.group(2)]: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.upper() if "t" in text else text)
    except ValueError:
        raise typer.BadParameter(
            "use earliest, now, a duration ago (30s, 15m, 2h, 1d) or an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def since_option(value: str | None, default: str) -> datetime | None:
    try:
        return parse_since(value or default)
    except typer.BadParameter as exc:
        fail(Exit.USAGE, f"--since {value!r}: {exc}")


def command_fields_help() -> str:
    lines = ["Fields per command (see docs/guides/service-teams.md):"]
    for spec in COMMANDS:
        names = [info.alias or key for key, info in spec.model.model_fields.items()]
        lines.append(f"  {spec.name}: {', '.join(names)}")
    return "\n\n".join(lines)


# ── send ─────────────────────────────────────────────────────────────────────────────────


@app.command(epilog=command_fields_help())
def send(
    command: Annotated[CommandType, typer.Argument(help="Which command (its topic).")],
    *,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="JSON file with the command; - reads stdin."),
    ] = None,
    fields: Fields = None,
    command_id: Annotated[
        str | None,
        typer.Option(help="Idempotency key (default: the file's, else a new cli-<hex> id)."),
    ] = None,
    account: Annotated[str | None, typer.Option(help="Configured Exotel account name.")] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Message key (default: `from` for call.connect, else call_sid)."),
    ] = None,
    headers: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", metavar="NAME=VALUE", help="Kafka header (repeatable)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for the result (exit 3 after).")
    ] = 30.0,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Await and print the result.")
    ] = True,
    json_output: JsonOutput = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Validate a command exactly as the executor will, publish it and print its result.

    Exit 0 accepted, 1 rejected or failed, 2 invalid (nothing published), 3 no result in
    time (the command may still run), 4 Kafka unreachable.
    """
    topic = command
    data = load_json_object(file) if file else {}
    apply_fields(data, fields or [])
    if command_id:
        data["command_id"] = command_id
    data.setdefault("command_id", f"cli-{uuid.uuid4().hex[:16]}")
    if account:
        data["account"] = account
    extra_headers = parse_headers(headers or [])
    parsed = validate(topic, json.dumps(data).encode())
    settings = settings_for(bootstrap)

    def published(where: Published) -> None:
        info(
            f"published {where.topic} {where.command_id} (key {where.key}, partition "
            f"{where.partition}, offset {where.offset}); waiting up to {timeout:g}s for "
            "its result…"
        )

    async def work() -> Exit:
        async with VoicebusClient(settings, client_id="voicebus-cli") as client:
            if not wait:
                where = await client.publish(parsed, key=key, headers=extra_headers)
                if json_output:
                    typer.echo(json.dumps(where.__dict__))
                else:
                    info(
                        f"published {where.topic} {where.command_id} (partition "
                        f"{where.partition}, offset {where.offset})"
                    )
                return Exit.OK
            try:
                result = await client.send(
                    parsed,
                    timeout=timeout,
                    key=key,
                    headers=extra_headers,
                    on_published=published,
                )
            except ResultTimeout as exc:
                info(
                    f"voicebus: {exc}; it may still run: "
                    f"`voicebus tail --command-id {parsed.command_id} --since 1h`"
                )
                return Exit.TIMEOUT
        show_result(result, json_output=json_output)
        return Exit.OK if result.outcome == "accepted" else Exit.FAILED

    run(work)


def show_result(result: CommandResult, *, json_output: bool) -> None:
    if json_output:
        typer.echo(result.model_dump_json())
        return
    colour = {"accepted": "green", "rejected": "red", "failed": "yellow"}[result.outcome]
    typer.echo(
        f"{result.command_type}.result: " + typer.style(result.outcome, fg=colour, bold=True)
    )
    typer.echo(result_block(result.model_dump(mode="json")))


# ── lookup, details ──────────────────────────────────────────────────────────────────────

Account = Annotated[str | None, typer.Option(help="Configured Exotel account name.")]
CommandIdOption = Annotated[
    str | None, typer.Option(help="Idempotency key (default: a new cli-<hex> id).")
]


def lookup_command(topic: CommandType, data: dict[str, Any], account: str | None) -> Any:
    """The command as the executor will read it (exit 2 when it would be rejected)."""
    data.setdefault("command_id", f"cli-{uuid.uuid4().hex[:16]}")
    if account:
        data["account"] = account
    return validate(topic, json.dumps(data, default=str).encode())


def timed_out(exc: ResultTimeout) -> Exit:
    info(f"voicebus: {exc}; `voicebus tail --command-id {exc.command_id} --since 1h` shows it")
    return Exit.TIMEOUT


@app.command()
def lookup(
    number: Annotated[str, typer.Argument(help="E.164 (+919812345678) or local (09812345678).")],
    *,
    account: Account = None,
    command_id: CommandIdOption = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for the answer (exit 3 after).")
    ] = 30.0,
    json_output: JsonOutput = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Look a number up (number.lookup): circle, type, operator and DND registration.

    Answered from the executor's cache when the number was looked up recently. Exit 0
    answered, 1 rejected or failed, 2 invalid (nothing published), 3 no answer in time,
    4 Kafka unreachable.
    """
    data: dict[str, Any] = {"number": number}
    if command_id:
        data["command_id"] = command_id
    parsed = lookup_command("number.lookup", data, account)
    settings = settings_for(bootstrap)

    async def work() -> Exit:
        async with VoicebusClient(settings, client_id="voicebus-cli") as client:
            try:
                result = await client.send(parsed, timeout=timeout)
            except ResultTimeout as exc:
                return timed_out(exc)
        if json_output:
            typer.echo(result.model_dump_json())
        elif result.number is not None:
            typer.echo(f"{result.command_type}.result: " + typer.style("accepted", fg="green"))
            typer.echo(number_table(result.number))
        else:
            show_result(result, json_output=False)
        return Exit.OK if result.outcome == "accepted" else Exit.FAILED

    run(work)


def backfill_filter(
    *,
    since: str | None,
    until: str | None,
    status: list[str],
    direction: list[str],
    from_numbers: list[str],
    to_numbers: list[str],
    caller_ids: list[str],
) -> dict[str, Any]:
    """The ``filter`` of a backfill from the options (only those given)."""
    found: dict[str, Any] = {}
    for name, text in (("since", since), ("until", until)):
        if text is not None:
            moment = since_option(text, "now")
            if moment is None:
                fail(Exit.USAGE, f"--{name} {text!r}: give a time, not earliest")
            found[name] = moment.isoformat()
    lists = (
        ("status", status),
        ("direction", direction),
        ("from", from_numbers),
        ("to", to_numbers),
        ("caller_id", caller_ids),
    )
    found |= {name: values for name, values in lists if values}
    return found


@app.command()
def details(
    call_sid: Annotated[
        str | None,
        typer.Argument(help="The call to look up; without it, a backfill of the filter."),
    ] = None,
    *,
    api: Annotated[
        Api | None, typer.Option(help="The API that placed the call (default v1).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Backfill calls created since: 30m, 2h, 1d or an ISO time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="… and created until (at most a month after --since).")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(help="completed, failed, busy, no-answer or canceled (repeatable)."),
    ] = None,
    direction: Annotated[
        list[str] | None,
        typer.Option(help="inbound, outbound-api or outbound-dial (repeatable)."),
    ] = None,
    from_numbers: Annotated[
        list[str] | None, typer.Option("--from", help="Number dialled first (up to 5).")
    ] = None,
    to_numbers: Annotated[
        list[str] | None, typer.Option("--to", help="Customer number (up to 5).")
    ] = None,
    caller_ids: Annotated[
        list[str] | None, typer.Option("--caller-id", help="ExoPhone (up to 5).")
    ] = None,
    account: Account = None,
    command_id: CommandIdOption = None,
    timeout: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds to wait for the result and its facts (exit 3)."),
    ] = 120.0,
    json_output: JsonOutput = False,
    bootstrap: Bootstrap = None,
) -> None:
    """A call's details (call.lookup CALL_SID), or a backfill of every call a filter
    matches (call.lookup --since …): price, durations, recordings, legs.

    Each call is also published on call.details for every consumer. Exit 0 done, 1
    rejected or failed, 2 invalid (nothing published), 3 not all in time, 4 Kafka
    unreachable.
    """
    call_filter = backfill_filter(
        since=since,
        until=until,
        status=status or [],
        direction=direction or [],
        from_numbers=from_numbers or [],
        to_numbers=to_numbers or [],
        caller_ids=caller_ids or [],
    )
    if call_sid is not None and call_filter:
        fail(Exit.USAGE, "give a CALL_SID or a filter (--since, --status, …), not both")
    if call_sid is None and not call_filter:
        fail(Exit.USAGE, "give a CALL_SID, or a filter (--since, --status, --to, …) to backfill")
    data: dict[str, Any] = {"call_sid": call_sid} if call_sid else {"filter": call_filter}
    if api is not None:
        data["api"] = api.value
    if command_id:
        data["command_id"] = command_id
    parsed = lookup_command("call.lookup", data, account)
    settings = settings_for(bootstrap)

    async def work() -> Exit:
        async with VoicebusClient(settings, client_id="voicebus-cli") as client:
            try:
                answer = await client.look_up_calls(parsed, timeout=timeout)
            except ResultTimeout as exc:
                return timed_out(exc)
        show_details(answer, one_call=call_sid is not None, json_output=json_output)
        return Exit.OK if answer.result.outcome == "accepted" else Exit.FAILED

    run(work)


def show_details(answer: LookupAnswer, *, one_call: bool, json_output: bool) -> None:
    """The calls found (a table, or JSON lines then the result); a backfill's count on
    stderr."""
    result = answer.result
    if json_output:
        for found in answer.details:
            typer.echo(found.model_dump_json(by_alias=True))
        typer.echo(result.model_dump_json())
    elif result.outcome != "accepted":
        show_result(result, json_output=False)
    elif one_call:
        for found in answer.details:
            typer.echo(details_table(found))
    elif answer.details:
        typer.echo(calls_table(answer.details))
    summary = result.lookup
    if summary is not None and not one_call:
        note = " (restarted: some calls may have been published twice)" if summary.restarted else ""
        info(f"{summary.calls} call(s) in {summary.pages} page(s) published on call.details{note}")


# ── tail ─────────────────────────────────────────────────────────────────────────────────


@dataclass
class FactFilter:
    call_sids: set[str] = field(default_factory=set)
    command_ids: set[str] = field(default_factory=set)
    event_types: set[str] = field(default_factory=set)
    learnt_sids: set[str] = field(default_factory=set)

    @property
    def by_id(self) -> bool:
        return bool(self.call_sids or self.command_ids)

    def matches(self, record: Record) -> bool:
        value = record.json_value()
        if not isinstance(value, dict):
            return not (self.by_id or self.event_types)
        is_result = record.topic in RESULT_TOPICS
        if self.by_id:
            call_sid = value.get("call_sid")
            ours = value.get("command_id") in self.command_ids
            if ours and is_result and call_sid:
                self.learnt_sids.add(call_sid)  # follow the call the command created
            if not (ours or call_sid in self.call_sids or call_sid in self.learnt_sids):
                return False
        if self.event_types:
            kind = "result" if is_result else value.get("event_type")
            return kind in self.event_types
        return True


@app.command()
def tail(
    *,
    call_sid: Annotated[
        list[str] | None, typer.Option(help="Only facts of this call (repeatable).")
    ] = None,
    command_id: Annotated[
        list[str] | None,
        typer.Option(help="Only facts of this command, and of the call its result names."),
    ] = None,
    event_type: Annotated[
        list[EventType] | None,
        typer.Option(help="result (any *.result), answered or terminal (repeatable)."),
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option(help="Topics to follow (default: the results and call.status)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Start at: earliest, now, a duration ago (15m, 2h, 1d) or an ISO time. "
            "Default: 1d when filtering by id, else now."
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Keep waiting for new facts.")
    ] = True,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many facts (exit 0).")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Stop after this many seconds (exit 3 if --count not met)."),
    ] = None,
    json_output: JsonOutput = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Follow fact topics (results and call.status), filtered, pretty or as JSON lines."""
    topics = topic or list(FACT_TOPICS)
    unknown = [t for t in topics if t not in ALL_TOPICS]
    if unknown:
        fail(Exit.USAGE, f"unknown topic(s) {', '.join(unknown)}; voicebus has {ALL_TOPICS}")
    wanted = FactFilter(
        call_sids=set(call_sid or ()),
        command_ids=set(command_id or ()),
        event_types={e.value for e in event_type or ()},
    )
    start = since_option(since, "1d" if wanted.by_id else "now")
    settings = settings_for(bootstrap)
    colour = sys.stdout.isatty()

    async def work() -> Exit:
        reader = TopicReader(settings, topics, since=start, client_id="voicebus-cli-tail")
        await reader.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        shown = 0
        try:
            while True:
                left = deadline - loop.time() if deadline is not None else 0.5
                if left <= 0:
                    if count is not None:
                        info(f"voicebus: {shown} of {count} fact(s) within {timeout:g}s")
                        return Exit.TIMEOUT
                    return Exit.OK
                records = await reader.batch(min(0.5, left))
                if not records and not follow and await reader.caught_up():
                    return Exit.OK if count is None or shown >= count else Exit.FAILED
                for record in records:
                    if not wanted.matches(record):
                        continue
                    typer.echo(
                        record_json(record) if json_output else fact_line(record, colour=colour)
                    )
                    shown += 1
                    if count is not None and shown >= count:
                        return Exit.OK
        finally:
            await reader.stop()

    run(work)


# ── dlq ──────────────────────────────────────────────────────────────────────────────────


def dlq_topics(names: list[str] | None) -> list[str]:
    if not names:
        return list(DLQ_TOPICS)
    chosen = []
    for name in names:
        topic = name if name.endswith(".dlq") else dlq(name)
        if topic not in DLQ_TOPICS:
            fail(Exit.USAGE, f"no dead-letter topic {topic!r}; voicebus has {DLQ_TOPICS}")
        chosen.append(topic)
    return chosen


@dlq_app.command("list")
def dlq_list(
    topic: Annotated[
        list[str] | None,
        typer.Option(help="call.connect, lwb.action, leg.hangup, call.status (or *.dlq)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="earliest (default), now, 15m, 2h, 1d or an ISO time.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when there is any dead letter.")
    ] = False,
    json_output: JsonOutput = False,
    bootstrap: Bootstrap = None,
) -> None:
    """List dead letters with their reasons (their ids are what `dlq republish` takes)."""
    topics = dlq_topics(topic)
    start = since_option(since, NO_SINCE)
    settings = settings_for(bootstrap)

    async def work() -> Exit:
        reader = TopicReader(settings, topics, since=start, client_id="voicebus-cli-dlq")
        await reader.start()
        found = 0
        try:
            while True:
                records = await reader.batch(0.5)
                if not records and await reader.caught_up():
                    break
                for record in records:
                    found += 1
                    typer.echo(
                        record_json(record, extra={"id": record.coordinates})
                        if json_output
                        else dead_letter_line(record)
                    )
        finally:
            await reader.stop()
        info(f"{found} dead letter(s) in {', '.join(topics)}")
        return Exit.FAILED if check and found else Exit.OK

    run(work)


def parse_entry(entry: str) -> tuple[str, int, int]:
    topic, _, rest = entry.partition(":")
    partition, _, offset = rest.partition(":")
    if not (topic and partition.isdigit() and offset.isdigit()):
        fail(Exit.USAGE, f"{entry!r}: expected TOPIC:PARTITION:OFFSET as `dlq list` shows")
    if topic not in DLQ_TOPICS:
        fail(Exit.USAGE, f"{entry!r}: {topic} is not a dead-letter topic")
    if topic.removesuffix(".dlq") not in COMMAND_TOPICS:
        fail(
            Exit.USAGE,
            f"{entry!r}: call.status dead letters are raw Exotel callbacks, not commands; "
            "post the body to the ingress's callback URL once the cause is fixed",
        )
    return topic, int(partition), int(offset)


@dlq_app.command("republish")
def dlq_republish(
    entries: Annotated[
        list[str], typer.Argument(metavar="ENTRY...", help="TOPIC:PARTITION:OFFSET ids.")
    ],
    value_file: Annotated[
        str | None,
        typer.Option(help="The corrected value (a JSON file; - reads stdin); one entry only."),
    ] = None,
    fields: Fields = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show, publish nothing.")
    ] = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Re-publish dead letters to the topic they came from, after a fix.

    Each value (as it was, or corrected with --value-file / --field) must pass the
    executor's validation; the original key and headers go with it (without the DLQ's
    own), plus voicebus_republished_from.
    """
    parsed = [parse_entry(e) for e in entries]
    if value_file and len(parsed) != 1:
        fail(Exit.USAGE, "--value-file corrects one entry at a time")
    replacement = (
        json.dumps(load_json_object(value_file)).encode() if value_file is not None else None
    )
    settings = settings_for(bootstrap)

    async def work() -> Exit:
        worst = Exit.OK
        async with VoicebusClient(settings, client_id="voicebus-cli-dlq") as client:
            for entry in parsed:
                code = await republish_one(
                    client, entry, replacement=replacement, fields=fields or [], dry_run=dry_run
                )
                worst = max(worst, code)
        return worst

    run(work)


async def republish_one(
    client: VoicebusClient,
    entry: tuple[str, int, int],
    *,
    replacement: bytes | None,
    fields: list[str],
    dry_run: bool,
) -> Exit:
    topic, partition, offset = entry
    name = f"{topic}:{partition}:{offset}"
    record = await fetch_record(client.settings, topic, partition, offset)
    if record is None:
        info(f"voicebus: {name}: no such dead letter")
        return Exit.FAILED
    origin = record.headers.get("origin_topic") or topic.removesuffix(".dlq")
    value = replacement if replacement is not None else record.value or b""
    if fields:
        try:
            data = json.loads(value)
        except (ValueError, RecursionError):
            info(f"voicebus: {name}: the value is not JSON; give the fixed one with --value-file")
            return Exit.USAGE
        if not isinstance(data, dict):
            info(f"voicebus: {name}: the value is not a JSON object; use --value-file")
            return Exit.USAGE
        value = json.dumps(apply_fields(data, fields)).encode()
    try:
        decoded = decode_command(origin, value)
    except UnreadableCommand as exc:
        info(f"voicebus: {name}: still unreadable ({exc.reason}); fix it with -F/--value-file")
        return Exit.USAGE
    if isinstance(decoded, InvalidCommand):
        info(f"voicebus: {name}: would be rejected: {decoded.message}")
        return Exit.USAGE
    headers = {k: v for k, v in record.headers.items() if k not in DLQ_HEADERS}
    headers[REPUBLISHED_HEADER] = name
    if dry_run:
        info(f"{name}: valid {origin} command {decoded.command_id} (dry run: not published)")
        return Exit.OK
    new_partition, new_offset = await client.publish_bytes(
        origin, value, key=record.key, headers=headers
    )
    info(
        f"re-published {name} -> {origin}:{new_partition}:{new_offset} "
        f"(command_id {decoded.command_id}); follow it with "
        f"`voicebus tail --command-id {decoded.command_id}`"
    )
    return Exit.OK


# ── topics ───────────────────────────────────────────────────────────────────────────────


@app.command()
def topics(
    *,
    create: Annotated[
        bool, typer.Option("--create", help="Create the missing topics (idempotent).")
    ] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when a topic is missing.")] = False,
    partitions: Annotated[
        int | None,
        typer.Option(min=1, help="Partitions of created topics (KAFKA_TOPIC_PARTITIONS)."),
    ] = None,
    replication_factor: Annotated[
        int | None,
        typer.Option(min=1, help="Replication of created topics (KAFKA_REPLICATION_FACTOR)."),
    ] = None,
    json_output: JsonOutput = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Show voicebus's topics with their partitions; create or check them."""
    settings = settings_for(bootstrap)
    overrides: dict[str, int] = {}
    if partitions:
        overrides["topic_partitions"] = partitions
    if replication_factor:
        overrides["replication_factor"] = replication_factor
    settings = settings.model_copy(update=overrides)

    async def work() -> Exit:
        existing = await topic_partitions(settings)
        missing = [t for t in ALL_TOPICS if t not in existing]
        if create and missing:
            info(f"creating {len(missing)} topic(s) with {settings.topic_partitions} partitions")
            await ensure_topics(settings, missing, attempts=3)
            existing = await topic_partitions(settings)
            missing = [t for t in ALL_TOPICS if t not in existing]
        for name in ALL_TOPICS:
            count = existing.get(name)
            if json_output:
                typer.echo(json.dumps({"topic": name, "partitions": count, "exists": bool(count)}))
            else:
                state = f"{count} partitions" if count else typer.style("missing", fg="red")
                typer.echo(f"{name:<22} {state}")
        if missing:
            info(f"{len(missing)} topic(s) missing: {', '.join(missing)}")
        return Exit.FAILED if missing and (check or create) else Exit.OK

    run(work)


# ── passthru-url ─────────────────────────────────────────────────────────────────────────

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
PASTE_HINT = """\
Paste it as the URL of the Passthru applet(s) of your call flow on the Exotel dashboard
(App Bazaar: the flow, its Passthru applet, URL). Every call through the flow then
becomes call.status flow events keyed by its CallSid (inbound calls: a supervisor can
act on them). "Make Passthru Async" is recommended; in sync mode voicebus answers 200
once the event is durable, and anything else when it is not: route both branches to the
same next applet. The URL holds the ingress's secret path token: keep it private."""


@app.command("passthru-url")
def passthru_url_command(
    account: Annotated[
        str,
        typer.Option(
            "--account",
            "-a",
            help="The configured Exotel account the flow's ExoPhones belong to (the call "
            "watch polls the calls' details with it).",
        ),
    ] = "default",
    public_url: Annotated[
        str,
        typer.Option(
            "--public-url",
            envvar="CALLBACK_PUBLIC_URL",
            show_envvar=True,
            help="The ingress's public base URL, as Exotel reaches it.",
        ),
    ] = DEFAULT_PUBLIC_URL,
) -> None:
    """Print the signed Passthru URL of the ingress, for an Exotel call flow (inbound calls).

    Reads CALLBACK_TOKEN and CALLBACK_SIGNING_SECRET from the environment (the ingress's
    own); prints the URL on stdout, how to use it on stderr.
    """
    if not ACCOUNT_NAME.fullmatch(account):
        fail(Exit.USAGE, "--account must be a configured account's name (letters, digits, . _ -)")
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        fail(Exit.USAGE, "--public-url must be http(s)://host[:port][/path] without a query")
    try:
        settings = IngressSettings()
    except ValidationError as exc:
        fail(Exit.USAGE, f"the ingress's settings are not usable: {describe_errors(exc)}")
    target = CallbackTarget(
        public_url, settings.callback_token.get_secret_value(), settings.signer()
    )
    typer.echo(target.passthru_url(account))
    info(PASTE_HINT)


# ── asyncapi ─────────────────────────────────────────────────────────────────────────────


@app.command("asyncapi")
def asyncapi_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(help="Exit 1 when this file differs from what the code generates."),
    ] = None,
) -> None:
    """Print voicebus's AsyncAPI 3.0 document (every topic, key, header and payload)."""
    if check is not None:
        if asyncapi.drifted(check):
            fail(Exit.FAILED, f"{check} drifts from the code; regenerate it")
        info(f"{check} is up to date")
        return
    if output is not None:
        asyncapi.write(output)
        info(f"wrote {output}")
        return
    typer.echo(asyncapi.render_text(), nl=False)


def main() -> None:
    """Entry point of the ``voicebus`` script."""
    app()
