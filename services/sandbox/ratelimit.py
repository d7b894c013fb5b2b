"""Sliding-window rate limits per account and API family, and what they let through."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from typing import Any, Literal

Family = Literal["voice", "get", "legs"]
FAMILIES: tuple[Family, ...] = ("voice", "get", "legs")
WINDOW_SECONDS = 60.0


class RateLimiter:
    def __init__(self, voice: int, get: int, legs: int, *, enabled: bool) -> None:
        self.limits: dict[Family, int] = {"voice": voice, "get": get, "legs": legs}
        self.enabled = enabled
        self._windows: dict[tuple[str, Family], deque[float]] = defaultdict(deque)
        self._per_second: dict[Family, dict[int, int]] = {f: defaultdict(int) for f in FAMILIES}
        self._accepted: dict[Family, int] = dict.fromkeys(FAMILIES, 0)
        self._rejected: dict[Family, int] = dict.fromkeys(FAMILIES, 0)
        self._injected_429: dict[Family, int] = dict.fromkeys(FAMILIES, 0)

    def configure(
        self,
        *,
        voice: int | None = None,
        get: int | None = None,
        legs: int | None = None,
        enabled: bool | None = None,
    ) -> None:
        for family, limit in (("voice", voice), ("get", get), ("legs", legs)):
            if limit is not None:
                self.limits[family] = limit  # type: ignore[index]
        if enabled is not None:
            self.enabled = enabled

    def acquire(self, account: str, family: Family) -> float | None:
        """None when accepted; else the seconds until a slot frees up (Retry-After)."""
        now = time.monotonic()
        window = self._windows[(account, family)]
        while window and now - window[0] >= WINDOW_SECONDS:
            window.popleft()
        if self.enabled and len(window) >= self.limits[family]:
            self._rejected[family] += 1
            if not window:
                return WINDOW_SECONDS
            return max(0.001, WINDOW_SECONDS - (now - window[0]))
        window.append(now)
        self._accepted[family] += 1
        buckets = self._per_second[family]
        buckets[int(time.time())] += 1
        if len(buckets) > 7200:
            for second in sorted(buckets)[:-3600]:
                del buckets[second]
        return None

    def note_injected_429(self, family: Family | None) -> None:
        if family is not None:
            self._injected_429[family] += 1

    def reset_windows(self) -> None:
        """Forget recent requests: every family starts with an empty window."""
        self._windows.clear()

    def reset_stats(self) -> None:
        for family in FAMILIES:
            self._per_second[family].clear()
            self._accepted[family] = self._rejected[family] = self._injected_429[family] = 0

    def stats(self) -> dict[str, Any]:
        families: dict[str, Any] = {}
        for family in FAMILIES:
            buckets = self._per_second[family]
            families[family] = {
                "limit_per_minute": self.limits[family],
                "accepted": self._accepted[family],
                "rejected_429": self._rejected[family],
                "injected_429": self._injected_429[family],
                "per_second": [
                    {"second": second, "count": buckets[second]} for second in sorted(buckets)
                ],
                "max_per_second": max(buckets.values(), default=0),
                "max_in_any_minute": _max_in_window(buckets),
            }
        return {
            "enabled": self.enabled,
            "window_seconds": WINDOW_SECONDS,
            "families": families,
            "rejected_429_total": sum(self._rejected.values()),
            "injected_429_total": sum(self._injected_429.values()),
        }


def _max_in_window(buckets: dict[int, int]) -> int:
    """Most requests in any 60 consecutive one-second buckets."""
    seconds = sorted(buckets)
    best = running = start = 0
    for second in seconds:
        running += buckets[second]
        while second - seconds[start] >= math.ceil(WINDOW_SECONDS):
            running -= buckets[seconds[start]]
            start += 1
        best = max(best, running)
    return best
