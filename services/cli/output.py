"""How the CLI shows facts and results: one readable line each, or JSON lines."""

from __future__ import annotations

import json
from typing import Any

import typer

from contracts.topics import CALL_STATUS, RESULT_TOPIC
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
