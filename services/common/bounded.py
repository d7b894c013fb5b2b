"""Bounded in-memory state: a recent-ids window and an LRU map with a time-to-live.

Both are bounded by size, so a flood of facts can never grow the process without limit;
what falls out is counted by the caller (``evicted``), never silently wrong.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

Clock = Callable[[], float]


class RecentIds:
    """The last ``size`` ids seen (insertion order); ``seen_before`` adds as it checks."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen_before(self, key: str) -> bool:
        if key in self._ids:
            self._ids.move_to_end(key)
            return True
        self._ids[key] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._ids)


@dataclass
class _Entry(Generic[V]):
    value: V
    stored_at: float


@dataclass
class TtlLru(Generic[K, V]):
    """A map of at most ``max_entries``, each living at most ``ttl_seconds`` since stored.

    Iteration order is oldest first. ``on_evict(key, value, reason)`` hears every entry
    dropped for age (``"ttl"``) or room (``"size"``), not those removed with :meth:`pop`.
    """

    max_entries: int
    ttl_seconds: float
    clock: Clock = time.monotonic
    on_evict: Callable[[K, V, str], None] | None = None
    _data: OrderedDict[K, _Entry[V]] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.max_entries < 1 or self.ttl_seconds <= 0:
            raise ValueError("max_entries and ttl_seconds must be positive")

    def _evict(self, key: K, entry: _Entry[V], reason: str) -> None:
        if self.on_evict is not None:
            self.on_evict(key, entry.value, reason)

    def expire(self) -> None:
        """Drop every entry older than the TTL (entries are kept oldest first)."""
        horizon = self.clock() - self.ttl_seconds
        while self._data:
            key, entry = next(iter(self._data.items()))
            if entry.stored_at > horizon:
                return
            del self._data[key]
            self._evict(key, entry, "ttl")

    def get(self, key: K) -> V | None:
        self.expire()
        entry = self._data.get(key)
        return None if entry is None else entry.value

    def put(self, key: K, value: V) -> None:
        """Store (or replace, keeping its original age) ``key``; evict the oldest if full."""
        self.expire()
        existing = self._data.get(key)
        if existing is not None:
            existing.value = value
            return
        self._data[key] = _Entry(value, self.clock())
        while len(self._data) > self.max_entries:
            old_key, old = self._data.popitem(last=False)
            self._evict(old_key, old, "size")

    def pop(self, key: K) -> V | None:
        entry = self._data.pop(key, None)
        return None if entry is None else entry.value

    def older_than(self, seconds: float) -> int:
        """How many entries were stored more than ``seconds`` ago (walks the old end only)."""
        self.expire()
        horizon = self.clock() - seconds
        count = 0
        for entry in self._data.values():
            if entry.stored_at > horizon:
                break
            count += 1
        return count

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)
