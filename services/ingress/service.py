"""The service layer: a decoded callback (or Passthru request) in, a durable fact (or
dead letter) out.

No HTTP here: the route decodes the request and maps :class:`Outcome` to a status code.
A Passthru's fact goes to its own sink with its own deadline (``flow_facts``,
``flow_timeout_seconds``): a sync Passthru holds the caller until it is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter

from contracts.status import CallStatusEvent
from services.ingress.metrics import IngressMetrics
from services.ingress.parsing import UnreadableCallback, parse_callback, parse_passthru
from services.ingress.sinks import DeadLetter, DeadLetterSink, FactSink, SinkUnavailable


class Verdict(StrEnum):
    ACCEPTED = "accepted"  # the fact is durable: 200
    UNREADABLE = "unreadable"  # dead-lettered: 400
    UNAVAILABLE = "unavailable"  # nothing durable: 503, Exotel retries


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    event: CallStatusEvent | None = None
    reason: str | None = None


class CallbackService:
    def __init__(
        self,
        *,
        facts: FactSink,
        dead_letters: DeadLetterSink,
        metrics: IngressMetrics,
        tz: ZoneInfo,
        publish_timeout_seconds: float,
        flow_facts: FactSink | None = None,
        flow_timeout_seconds: float | None = None,
    ) -> None:
        self._facts = facts
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._tz = tz
        self._timeout = publish_timeout_seconds
        self._flow_facts = flow_facts or facts
        self._flow_timeout = flow_timeout_seconds or publish_timeout_seconds
        # the children of the labels every callback uses, looked up once
        self._received: dict[tuple[str, str], Counter] = {}
        self._published_ok = metrics.publish_seconds.labels("ok")

    async def ingest(
        self,
        payload: Mapping[str, Any],
        *,
        query: Mapping[str, str],
        raw_body: bytes,
        content_type: str,
        received_at: datetime,
        passthru: bool = False,
    ) -> Outcome:
        """Parse and publish one callback (``passthru``: a call flow's Passthru request);
        dead-letter ``raw_body`` when it is unreadable."""
        parse = parse_passthru if passthru else parse_callback
        facts, timeout = (
            (self._flow_facts, self._flow_timeout) if passthru else (self._facts, self._timeout)
        )
        try:
            event = parse(payload, query=query, received_at=received_at, tz=self._tz)
        except UnreadableCallback as exc:
            return await self.reject(
                raw_body=raw_body,
                reason=exc.reason,
                content_type=content_type,
                received_at=received_at,
            )
        kind = (event.api, event.event_type)
        received = self._received.get(kind)
        if received is None:
            received = self._received[kind] = self._metrics.received.labels(*kind)
        received.inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                await facts.put(event)
        except TimeoutError:
            self._observe_publish(started, "timeout")
            return self._unavailable(event, f"not durable within {timeout}s")
        except SinkUnavailable as exc:
            self._observe_publish(started, "error")
            return self._unavailable(event, str(exc))
        self._observe_publish(started, "ok")
        return Outcome(Verdict.ACCEPTED, event=event)

    async def reject(
        self, *, raw_body: bytes, reason: str, content_type: str, received_at: datetime
    ) -> Outcome:
        """Write an unreadable callback's raw bytes to the dead-letter topic."""
        letter = DeadLetter(
            body=raw_body, reason=reason, content_type=content_type, received_at=received_at
        )
        try:
            async with asyncio.timeout(self._timeout):
                await self._dead_letters.put(letter)
        except (TimeoutError, SinkUnavailable) as exc:
            # Not durable anywhere: 503 so that Exotel retries and we get another chance.
            self._metrics.dlq_writes.labels("failed").inc()
            self._metrics.rejected.labels("unavailable").inc()
            detail = str(exc) or "dead-letter write timed out"
            return Outcome(Verdict.UNAVAILABLE, reason=f"{reason} (dead letter failed: {detail})")
        self._metrics.dlq_writes.labels("ok").inc()
        self._metrics.rejected.labels("unreadable").inc()
        return Outcome(Verdict.UNREADABLE, reason=reason)

    def _observe_publish(self, started: float, outcome: str) -> None:
        histogram = (
            self._published_ok if outcome == "ok" else self._metrics.publish_seconds.labels(outcome)
        )
        histogram.observe(time.perf_counter() - started)

    def _unavailable(self, event: CallStatusEvent, reason: str) -> Outcome:
        self._metrics.rejected.labels("unavailable").inc()
        return Outcome(Verdict.UNAVAILABLE, event=event, reason=reason)
