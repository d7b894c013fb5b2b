"""How the CLI shows facts and results: one readable line each, or JSON lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import typer

from contracts.details import CallDetails
from contracts.results import NumberInfo
from contracts.topics import CALL_DETAILS, CALL_STATUS, RESULT_TOPIC
from services.client.reader import Record

RESULT_TOPICS = frozenset(RESULT_TOPIC.values())
OUTCOME_COLOURS = {"accepted": "green", "rejected": "red", "failed": "yellow"}


def record_json(record: Record, *, extra: dict[str, Any] | None = None) -> str:
    """One JSON line: coordinates, key, headers and the value (JSON, else text)."""
    value = record.json_value()
    if value is None and record.value:
        value = record.value.decode("utf-8", "replace")
    line = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp.isoformat() if record.timestamp else None,
        "key": record.key_text,
        "headers": record.headers,
        "value": value,
        **(extra or {}),
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def _time(record: Record) -> str:
    return record.timestamp.strftime("%H:%M:%S.%f")[:-3] if record.timestamp else "--:--:--"


def _pairs(value: dict[str, Any], names: tuple[str, ...]) -> str:
    return " ".join(f"{n}={value[n]}" for n in names if value.get(n) not in (None, "", []))


def error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    parts = [str(error.get("code")), str(error.get("message", ""))]
    if error.get("http_status"):
        parts.append(f"(http {error['http_status']}")
        parts[-1] += f", exotel {error['exotel_code']})" if error.get("exotel_code") else ")"
    return " ".join(p for p in parts if p)


def fact_line(record: Record, *, colour: bool = True) -> str:
    """``HH:MM:SS.mmm  topic  what  details`` for a result or a status fact."""
    value = record.json_value()
    head = f"{_time(record)}  {record.topic:<20}"
    if not isinstance(value, dict):
        return f"{head}  (unreadable value, {len(record.value or b'')} bytes)"
    if record.topic in RESULT_TOPICS:
        outcome = str(value.get("outcome"))
        shown = f"{outcome:<9}"
        if colour:
            shown = typer.style(shown, fg=OUTCOME_COLOURS.get(outcome), bold=True)
        details = _pairs(value, ("command_id", "call_sid", "leg_sid", "account", "attempts"))
        error = error_text(value.get("error"))
        return f"{head}  {shown} {details}" + (f"  error: {error}" if error else "")
    if record.topic == CALL_STATUS:
        what = f"{value.get('event_type', '?')}:{value.get('status', '?')}"
        details = _pairs(
            value,
            ("call_sid", "leg_sid", "command_id", "conversation_duration", "last_action"),
        )
        return f"{head}  {what:<22} {details}"
    if record.topic == CALL_DETAILS:
        what = f"{value.get('source', '?')}:{value.get('status', '?')}"
        details = _pairs(value, ("call_sid", "lookup_id", "command_id", "price", "duration"))
        return f"{head}  {what:<22} {details}"
    return f"{head}  {json.dumps(value, ensure_ascii=False)}"


def dead_letter_line(record: Record) -> str:
    """``topic:partition:offset  time  key  reason  (origin)  value preview``."""
    headers = record.headers
    origin = headers.get("origin_topic")
    if origin:
        origin += f":{headers.get('origin_partition', '?')}:{headers.get('origin_offset', '?')}"
    else:
        origin = headers.get("origin", "?")
    preview = (record.value or b"")[:60].decode("utf-8", "replace").replace("\n", "\\n")
    return (
        f"{record.coordinates}  {_time(record)}  key={record.key_text or '-'}\n"
        f"    error:  {headers.get('error', '(no error header)')}\n"
        f"    origin: {origin}\n"
        f"    value:  {preview!r}{'…' if len(record.value or b'') > 60 else ''}"
    )


def result_block(value: dict[str, Any]) -> str:
    """A command result, one field a line."""
    names = (
        "command_id", "command_type", "outcome", "call_sid", "leg_sid", "account",
        "api", "attempts", "requested_at", "completed_at",
    )  # fmt: skip
    lines = [f"  {n:<13} {value[n]}" for n in names if value.get(n) not in (None, "")]
    error = value.get("error")
    if error:
        lines.append(f"  {'error':<13} {error_text(error)}")
        if error.get("field"):
            lines.append(f"  {'field':<13} {error['field']}")
        lines.append(f"  {'retryable':<13} {str(error.get('retryable')).lower()}")
    return "\n".join(lines)


# ── lookups ──────────────────────────────────────────────────────────────────────────────


def _rows(rows: Sequence[tuple[str, object]]) -> str:
    shown = [(name, value) for name, value in rows if value not in (None, "", [])]
    width = max((len(name) for name, _ in shown), default=0)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in shown)


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else None


def _with_code(code: str | None, name: str | None) -> str | None:
    return " ".join(part for part in (code, name and f"({name})") if part) or None


def number_table(info: NumberInfo) -> str:
    """A number's metadata, one field a line."""
    looked_up = "served from the cache" if info.cached else "asked Exotel"
    return _rows(
        [
            ("number", info.number),
            ("phone number", info.phone_number),
            ("DND", info.dnd),
            ("type", info.type),
            ("circle", _with_code(info.circle, info.circle_name)),
            ("operator", _with_code(info.operator, info.operator_name)),
            ("looked up", f"{_when(info.looked_up_at)} ({looked_up})"),
        ]
    )


def details_table(details: CallDetails) -> str:
    """One call's details, one field a line, then its legs."""
    lines = _rows(
        [
            ("call sid", details.call_sid),
            ("status", f"{details.status} (Exotel: {details.exotel_status})"),
            ("api", details.api),
            ("direction", details.direction),
            ("from", details.from_),
            ("to", details.to),
            ("caller id", details.caller_id),
            ("started", _when(details.started_at)),
            ("ended", _when(details.ended_at)),
            ("duration", details.duration),
            ("talk", details.conversation_duration),
            ("price", details.price or "(not filled in yet)"),
            ("answered by", details.answered_by),
            ("digits", details.digits),
            ("agent", details.agent and (details.agent.name or details.agent.number)),
            ("custom field", details.custom_field),
            ("recordings", "\n    ".join(details.recordings)),
        ]
    )
    legs = [
        "    "
        + "  ".join(
            (
                str(leg.index),
                f"{leg.origin or '-':<13}",
                f"{leg.phone_number or '-':<16}",
                f"{leg.exotel_status or '-':<11}",
                "-" if leg.on_call_duration is None else str(leg.on_call_duration),
            )
        )
        for leg in details.legs
    ]
    header = (
        f"  legs ({details.legs_source}):\n"
        "    #  origin         number            status       on call"
    )
    return "\n".join([lines, header, *legs]) if legs else lines


CALL_COLUMNS = ("call sid", "created", "status", "from", "to", "duration", "talk", "price")


def calls_table(calls: Sequence[CallDetails]) -> str:
    """One line per call (a backfill's calls)."""
    rows = [CALL_COLUMNS] + [
        (
            call.call_sid,
            _when(call.created_at) or "-",
            call.status,
            call.from_ or "-",
            call.to or "-",
            str(call.duration if call.duration is not None else "-"),
            str(call.conversation_duration if call.conversation_duration is not None else "-"),
            call.price or "-",
        )
        for call in calls
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(CALL_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
