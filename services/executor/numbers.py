"""Number metadata in the executor: its cache per account and number, and the DND rule.

A number's circle, operator and DND registration change rarely, so a lookup is kept for
``EXECUTOR_NUMBER_CACHE_HOURS`` (24 h by default): a repeated ``number.lookup``, or the
DND check of a ``call.connect`` to a number looked up before, costs no request. The cache
is per replica and in memory (bounded by ``EXECUTOR_NUMBER_CACHE_MAX``): a restart or a
rebalance costs at most one more lookup per number, never a wrong answer.

An Indian number is cached under one spelling (``+919876543210``, ``09876543210`` and
``9876543210`` are one entry); any other number under its digits as given.

The DND rule (:func:`refuse_dnd`): with the check on, a promotional ``call.connect`` to a
number Exotel says is on India's DND list is refused (:class:`DndBlocked`) before anyone
is rung. A transactional call (``call_type: trans``) is never refused, and neither is a
number whose registration Exotel cannot tell (``unavailable``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from contracts.commands import CallConnect
from contracts.results import ErrorCode, NumberInfo
from services.common.bounded import Clock, TtlLru
from services.exotel.models import NumberMetadata

__all__ = [
    "CachedNumber",
    "DndBlocked",
    "NumberCache",
    "cache_key",
    "dnd_checked",
    "refuse_dnd",
]

_NON_DIGITS = re.compile(r"\D")
_INDIA = "91"
_NATIONAL_DIGITS = 10


def cache_key(number: str) -> str:
    """One spelling per number: ``+91`` / ``0`` prefixes of a 10-digit Indian number are
    dropped; other numbers keep their digits (and a leading ``+``)."""
    digits = _NON_DIGITS.sub("", number)
    if number.startswith("+"):
        if digits.startswith(_INDIA) and len(digits) == len(_INDIA) + _NATIONAL_DIGITS:
            return digits[len(_INDIA) :]
        return f"+{digits}"
    if digits.startswith("0") and len(digits) == _NATIONAL_DIGITS + 1:
        return digits[1:]
    return digits


@dataclass(frozen=True)
class CachedNumber:
    """A lookup as Exotel answered it, and when."""

    metadata: NumberMetadata
    looked_up_at: datetime


class NumberCache:
    """Lookups by (account, number) for ``ttl_seconds``; ``ttl_seconds == 0`` caches nothing."""

    def __init__(
        self,
        ttl_seconds: float = 24 * 3600.0,
        max_entries: int = 100_000,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self._enabled = ttl_seconds > 0
        self._entries: TtlLru[tuple[str, str], CachedNumber] = TtlLru(
            max_entries, ttl_seconds or 1.0, clock
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, account: str, number: str) -> CachedNumber | None:
        if not self._enabled:
            return None
        return self._entries.get((account, cache_key(number)))

    def put(self, account: str, number: str, entry: CachedNumber) -> None:
        if not self._enabled:
            return
        key = (account, cache_key(number))
        self._entries.pop(key)  # a fresh answer lives a whole TTL again
        self._entries.put(key, entry)


# ------------------------------------------------------------------ the DND rule


class DndBlocked(Exception):
    """A promotional call to a number registered on India's DND list: not placed."""

    code: ClassVar[ErrorCode] = "dnd_blocked"

    def __init__(self, number: str) -> None:
        super().__init__(
            f"'to' {number} is registered on India's DND (Do Not Disturb) list: a "
            "promotional call to it is not placed (set call_type 'trans' for a "
            "transactional call)"
        )
        self.number = number


def dnd_checked(command: CallConnect, account_default: bool) -> bool:
    """Whether ``command``'s ``to`` is looked up before the call: the command's
    ``dnd_check``, else the account's; never for a flow call (no ``to``) or a
    transactional one."""
    wanted = command.dnd_check if command.dnd_check is not None else account_default
    return wanted and command.to is not None and command.call_type != "trans"


def refuse_dnd(info: NumberInfo) -> None:
    """Raise :class:`DndBlocked` when ``info`` says the number is on the DND list."""
    if info.dnd == "yes":
        raise DndBlocked(info.number)
