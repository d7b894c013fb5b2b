"""Bounded state: the dedupe window and the TTL/LRU map."""

from __future__ import annotations

import pytest

from services.common.bounded import RecentIds, TtlLru


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_recent_ids_forget_the_oldest():
    ids = RecentIds(2)
    assert not ids.seen_before("a")
    assert not ids.seen_before("b")
    assert ids.seen_before("a")  # refreshed: b is now the oldest
    assert not ids.seen_before("c")
    assert len(ids) == 2
    assert not ids.seen_before("b")


def test_ttl_lru_evicts_by_age_and_size():
    clock = Clock()
    evicted: list[tuple[str, str]] = []
    table: TtlLru[str, int] = TtlLru(
        2, 10.0, clock, on_evict=lambda k, _v, why: evicted.append((k, why))
    )
    table.put("a", 1)
    clock.now = 5
    table.put("b", 2)
    clock.now = 8
    table.put("c", 3)  # full: a goes
    assert evicted == [("a", "size")]
    clock.now = 16  # b is 11 s old
    assert table.get("b") is None
    assert evicted[-1] == ("b", "ttl")
    assert table.get("c") == 3
    assert table.pop("c") == 3
    assert len(table) == 0
    assert evicted == [("a", "size"), ("b", "ttl")]  # pop is not an eviction


def test_ttl_lru_replace_keeps_age_and_counts_old_entries():
    clock = Clock()
    table: TtlLru[str, int] = TtlLru(10, 100.0, clock)
    table.put("a", 1)
    clock.now = 30
    table.put("b", 2)
    table.put("a", 5)
    assert table.get("a") == 5
    assert list(table) == ["a", "b"]
    clock.now = 45
    assert table.older_than(40) == 1
    assert table.older_than(10) == 2
    assert "a" in table


@pytest.mark.parametrize(("size", "ttl"), [(0, 1.0), (1, 0.0)])
def test_bounds_must_be_positive(size, ttl):
    with pytest.raises(ValueError, match="positive"):
        TtlLru(size, ttl)
