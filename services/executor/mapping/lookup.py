"""Map a ``call.lookup`` filter onto Exotel's bulk call details, within its limits.

The contract's model already refuses what it can see alone (more than five numbers per
list, ``until`` without ``since`` or more than a month after it); what depends on the
moment it runs is checked here: Exotel keeps call records for six months only.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from contracts.commands import MAX_AGE_MONTHS, CallFilter, shift_months
from contracts.results import ErrorCode
from services.exotel.client import BulkFilter


class FilterRefused(ValueError):
    """A filter Exotel would refuse: rejected with the field named, before any request."""

    code: ClassVar[ErrorCode] = "invalid_command"

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def bulk_filter(call_filter: CallFilter, *, now: datetime) -> BulkFilter:
    """The bulk call details filters of ``call_filter``; raises :class:`FilterRefused`."""
    oldest = shift_months(now, -MAX_AGE_MONTHS)
    if call_filter.since is not None and call_filter.since < oldest:
        raise FilterRefused(
            "filter.since",
            f"Exotel keeps call records for {MAX_AGE_MONTHS} months: 'since' must be after "
            f"{oldest.isoformat(timespec='seconds')}",
        )
    return BulkFilter(
        from_numbers=tuple(call_filter.from_ or ()),
        to_numbers=tuple(call_filter.to or ()),
        caller_ids=tuple(call_filter.caller_id or ()),
        statuses=tuple(call_filter.status or ()),
        directions=tuple(call_filter.direction or ()),
        created_from=call_filter.since,
        created_to=call_filter.until,
    )
