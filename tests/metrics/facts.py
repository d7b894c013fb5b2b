"""Real facts for the metrics tests: the ingress's own parse of Exotel's documented
callback samples, and CommandResults as the executor publishes them (JSON bytes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from contracts import CallStatusEvent, CommandError, CommandResult
from services.ingress.parsing import parse_callback
from tests.ingress.samples import load

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
IST = ZoneInfo("Asia/Kolkata")


def sample_event(
    name: str,
    *,
    received_at: datetime = T0,
    query: dict[str, str] | None = None,
    **changes: Any,
) -> CallStatusEvent:
    """A documented callback sample turned into a CallStatusEvent by the ingress's parser."""
    event = parse_callback(load(name), query=query or {}, received_at=received_at, tz=IST)
    return event.model_copy(update=changes) if changes else event


def status_json(event: CallStatusEvent) -> bytes:
    """The bytes the ingress publishes on call.status."""
    return event.model_dump_json(by_alias=True).encode()


def result(
    command_type: str = "call.connect",
    outcome: str = "accepted",
    *,
    command_id: str = "cmd-1",
    call_sid: str | None = "sid-1",
    account: str = "default",
    api: str | None = "v1",
    requested_at: datetime | None = T0,
    completed_at: datetime | None = None,
    error_code: str | None = None,
) -> bytes:
    """The bytes the executor publishes on ``<command>.result``."""
    error = None
    if error_code is not None:
        error = CommandError.model_validate(
            {"code": error_code, "message": "no", "retryable": False, "http_status": 409}
        )
    model = CommandResult.model_validate(
        {
            "command_id": command_id,
            "command_type": command_type,
            "outcome": outcome,
            "call_sid": call_sid,
            "account": account,
            "api": api if command_type == "call.connect" else None,
            "attempts": 1,
            "error": error,
            "requested_at": requested_at,
            "completed_at": completed_at or (T0 + timedelta(seconds=0.4)),
        }
    )
    return model.model_dump_json().encode()
