"""Delivers status callbacks over HTTP, in order per call, retrying like Exotel."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from services.exotel.fields import Spelling
from services.sandbox import clock, payloads
from services.sandbox.settings import SandboxSettings
from services.sandbox.state import CallbackRecord, DeliveryAttempt

log = logging.getLogger("services.sandbox.callbacks")


class CallbackSender:
    """One httpx client per app; callbacks of one call go out one after another."""

    def __init__(self, settings: SandboxSettings) -> None:
        self._settings = settings
        #: the key spelling of every callback sent (None: each as its document spells it)
        self.spelling: Spelling | None = settings.spelling()
        self._client: httpx.AsyncClient | None = None
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self._settings.callback_timeout_seconds,
            follow_redirects=False,
            headers={"User-Agent": "Exotel-Sandbox/1.0"},
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def send(
        self,
        chain_key: str,
        records: list[CallbackRecord],
        *,
        event: str,
        url: str,
        method: str,
        content_type: str,
        payload: dict[str, Any],
        leg_sid: str | None = None,
        retries: int | None = None,
    ) -> CallbackRecord:
        """Queue one callback after the previous ones of the same call (``retries``: how
        often a non-200 is retried, default ``callback_retries``; a Passthru is not)."""
        payload = payloads.respell(payload, self.spelling)
        final_url, body, header = payloads.encode(payload, method, url, content_type)
        record = CallbackRecord(
            event=event,
            url=final_url,
            method=method.upper(),
            content_type=header,
            payload=payload,
            body=body,
            leg_sid=leg_sid,
        )
        records.append(record)
        previous = self._chains.get(chain_key)
        chances = self._settings.callback_retries if retries is None else retries
        task = asyncio.create_task(self._after(previous, record, chances))
        self._chains[chain_key] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._forget(chain_key, done))
        return record

    def _forget(self, chain_key: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._chains.get(chain_key) is task:
            del self._chains[chain_key]

    async def _after(
        self, previous: asyncio.Task[None] | None, record: CallbackRecord, retries: int
    ) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        await self._deliver(record, retries)

    async def _deliver(self, record: CallbackRecord, retries: int) -> None:
        settings = self._settings
        try:
            for attempt in range(1, retries + 2):
                if await self._attempt(record, attempt):
                    record.delivered = True
                    return
                if attempt <= retries:
                    await asyncio.sleep(settings.callback_retry_delay_seconds)
        finally:
            record.finished = True
            record.settled.set()

    async def _attempt(self, record: CallbackRecord, attempt: int) -> bool:
        if self._client is None:
            raise RuntimeError("CallbackSender.start() was not awaited")
        headers = {"Content-Type": record.content_type} if record.content_type else {}
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client.request(
                record.method, record.url, content=record.body or None, headers=headers
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        record.attempts.append(
            DeliveryAttempt(
                attempt=attempt,
                at=clock.now(),
                status_code=status,
                error=error,
                elapsed_seconds=round(time.monotonic() - started, 4),
            )
        )
        log.info(
            "callback event=%s attempt=%d status=%s error=%s",
            record.event,
            attempt,
            status,
            error,
        )
        return status == 200
