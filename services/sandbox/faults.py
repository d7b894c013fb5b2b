"""Injected trouble: one-off faults, random chaos and added latency."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

FaultKind = Literal["http", "timeout", "rate_limit"]
ChaosKind = Literal["5xx", "timeout", "rate_limit"]


class FaultSpec(BaseModel):
    """The next ``count`` requests matching ``match``/``method`` get this answer."""

    match: str = ""
    method: str | None = None
    status: int | None = None
    count: int | None = Field(default=1, ge=1)  # None: until cleared
    body: str | None = None
    retry_after: float | None = None
    delay_seconds: float = Field(default=0.0, ge=0)
    kind: FaultKind = "http"


class ChaosSpec(BaseModel):
    """Random faults on a share of the matching requests."""

    error_rate: float = Field(ge=0, le=1)
    kinds: list[ChaosKind] = Field(default_factory=lambda: list[ChaosKind](["5xx"]), min_length=1)
    timeout_seconds: float = Field(default=2.0, ge=0)
    retry_after: float | None = 1.0
    seed: int | None = None
    match: str = ""
    method: str | None = None


@dataclass
class Injection:
    """What to do to one request. ``status`` None: answer normally after the delay."""

    kind: FaultKind
    status: int | None
    delay_seconds: float
    body: str | None = None
    retry_after: float | None = None
    source: str = "fault"

    @property
    def label(self) -> str:
        return f"{self.source}:{self.kind}:{self.status}"


def _matches(match: str, method: str | None, req_method: str, path: str) -> bool:
    if method is not None and method.upper() != req_method.upper():
        return False
    return match in ("", "*") or match.lower() in path.lower()


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[tuple[FaultSpec, list[int]]] = []
        self._chaos: ChaosSpec | None = None
        self._rng = random.Random()  # noqa: S311 - test chaos, not cryptography
        self.latency_seconds = 0.0

    def add(self, spec: FaultSpec) -> None:
        self._faults.append((spec, [spec.count or 0]))

    def set_chaos(self, spec: ChaosSpec) -> None:
        self._chaos = spec
        self._rng = random.Random(spec.seed)  # noqa: S311

    def clear(self) -> None:
        self._faults.clear()
        self._chaos = None

    def pick(self, method: str, path: str) -> Injection | None:
        for spec, left in self._faults:
            if spec.count is not None and left[0] <= 0:
                continue
            if not _matches(spec.match, spec.method, method, path):
                continue
            left[0] -= 1
            status = spec.status
            if spec.kind == "http" and status is None:
                status = 503
            if spec.kind == "rate_limit":
                status = 429
            return Injection(spec.kind, status, spec.delay_seconds, spec.body, spec.retry_after)
        self._faults = [(s, n) for s, n in self._faults if s.count is None or n[0] > 0]
        return self._pick_chaos(method, path)

    def _pick_chaos(self, method: str, path: str) -> Injection | None:
        chaos = self._chaos
        if chaos is None or not _matches(chaos.match, chaos.method, method, path):
            return None
        if self._rng.random() >= chaos.error_rate:
            return None
        kind = self._rng.choice(chaos.kinds)
        if kind == "5xx":
            status = self._rng.choice([500, 502, 503])
            return Injection("http", status, 0.0, source="chaos")
        if kind == "timeout":
            return Injection("timeout", None, chaos.timeout_seconds, source="chaos")
        return Injection("rate_limit", 429, 0.0, retry_after=chaos.retry_after, source="chaos")

    def view(self) -> dict[str, Any]:
        return {
            "faults": [
                {**spec.model_dump(), "remaining": None if spec.count is None else left[0]}
                for spec, left in self._faults
            ],
            "chaos": None if self._chaos is None else self._chaos.model_dump(),
            "latency_seconds": self.latency_seconds,
        }
