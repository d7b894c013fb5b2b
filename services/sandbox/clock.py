"""Wall-clock helpers: Exotel speaks India Standard Time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")


def now() -> datetime:
    """The current time in IST, whole seconds are applied at formatting time."""
    return datetime.now(IST)


def v1_time(value: datetime | None) -> str | None:
    """``YYYY-MM-DD HH:mm:ss`` in IST (v1 and LWB APIs)."""
    return None if value is None else value.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def v2_time(value: datetime | None) -> str | None:
    """ISO 8601 with offset, e.g. ``2021-06-30T02:43:13+05:30`` (v2)."""
    if value is None:
        return None
    return value.astimezone(IST).replace(microsecond=0).isoformat()


def v3_time(value: datetime | None) -> str | None:
    """``2022-11-03 00:18:32+05:30`` (v3)."""
    if value is None:
        return None
    return value.astimezone(IST).replace(microsecond=0).isoformat(sep=" ")


def iso(value: datetime) -> str:
    """Full-precision ISO 8601, for the admin API."""
    return value.isoformat()
