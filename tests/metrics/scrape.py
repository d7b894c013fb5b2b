"""Read a service's /metrics in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    response = httpx.get(f"{base_url}/metrics", timeout=5)
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over every series whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def wait_for_metrics(
    base_url: str, condition: Callable[[Samples], bool], *, timeout: float = 30.0, what: str = ""
) -> Samples:
    deadline = time.monotonic() + timeout
    samples: Samples = {}
    while time.monotonic() < deadline:
        samples = scrape(base_url)
        if condition(samples):
            return samples
        await asyncio.sleep(0.2)
    voicebus = {
        k: v
        for k, v in samples.items()
        if k[0].startswith("voicebus_") and v and not k[0].endswith(("_created", "_bucket"))
    }
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {voicebus}")


async def settled(base_url: str, *, quiet_seconds: float = 1.5, timeout: float = 60.0) -> Samples:
    """Wait until the service stops consuming (its consumed counters hold still)."""
    deadline = time.monotonic() + timeout
    last = -1.0
    since = time.monotonic()
    while time.monotonic() < deadline:
        samples = scrape(base_url)
        now = total(samples, "voicebus_metrics_messages_consumed_total")
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return samples
        await asyncio.sleep(0.2)
    raise AssertionError("the metrics service never stopped consuming")
