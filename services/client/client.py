"""``VoicebusClient``: publish voicebus commands and await their results, with no Kafka code.

One producer for the commands; one group-less consumer on the three result topics (started
on the first :meth:`VoicebusClient.send` or :meth:`VoicebusClient.results`), positioned
``lookback`` before that moment, so a result that arrives while the command is being
published is never missed; another on ``call.status`` only if :meth:`statuses` is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Generic, TypeVar

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from pydantic import BaseModel, ValidationError

from contracts.catalog import spec_of
from contracts.commands import Command, CommandType
from contracts.decoding import InvalidCommand, UnreadableCommand, decode_command
from contracts.results import CommandResult
from contracts.status import CallStatusEvent
from contracts.topics import CALL_STATUS, RESULT_TOPIC
from services.client.errors import (
    CommandNotValid,
    KafkaUnavailable,
    ResultTimeout,
    VoicebusError,
)
from services.client.reader import Record, TopicReader, kafka_unavailable, start_failed
from services.common.kafka import MAX_MESSAGE_BYTES
from services.common.kafka_security import security_options
from services.common.settings import KafkaSettings

log = structlog.get_logger(__name__)

T = TypeVar("T", bound=BaseModel)


def command_type(command: Command) -> CommandType:
    """``call.connect``, ``lwb.action`` or ``leg.hangup``: also the command's topic."""
    return spec_of(command).name


def command_key(command: Command) -> str:
    """The recommended message key (the command table's): the agent's number for
    call.connect, else the call sid (so that one call's commands are executed in order)."""
    return spec_of(command).recommended_key(command)


def encode_command(command: Command) -> bytes:
    """The command as published, checked with the executor's own decoder first."""
    topic = command_type(command)
    payload = command.model_dump_json(by_alias=True, exclude_none=True).encode()
    try:
        decoded = decode_command(topic, payload)
    except UnreadableCommand as exc:
        raise CommandNotValid(exc.reason) from exc
    if isinstance(decoded, InvalidCommand):
        raise CommandNotValid(decoded.message, field=decoded.field)
    return payload


@dataclass(frozen=True)
class Published:
    """Where a command was written."""

    command_id: str
    topic: str
    partition: int
    offset: int
    key: str


class _Watch(Generic[T]):
    """A reader task that parses records into ``model`` and hands them out: to waiters
    (by key), to listeners (queues), and to a bounded cache of recent ones."""

    def __init__(
        self,
        reader: TopicReader,
        model: type[T],
        waiter_key: Callable[[T], Any],
        cache_size: int = 10_000,
    ) -> None:
        self._reader = reader
        self._model = model
        self._waiter_key = waiter_key
        self._cache: OrderedDict[Any, T] = OrderedDict()
        self._cache_size = cache_size
        self._waiters: dict[Any, list[asyncio.Future[T]]] = {}
        self._listeners: set[asyncio.Queue[T | BaseException]] = set()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"voicebus-{self._model.__name__}")

    async def _run(self) -> None:
        try:
            while True:
                for record in await self._reader.batch(1.0):
                    item = self._parse(record)
                    if item is not None:
                        self._deliver(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the reader died: tell everyone waiting
            log.warning("voicebus_client.reader_failed", error=repr(exc))
            self._fail(exc if isinstance(exc, VoicebusError) else VoicebusError(repr(exc)))

    def _parse(self, record: Record) -> T | None:
        if not record.value:
            return None
        try:
            return self._model.model_validate_json(record.value)
        except ValidationError:
            log.warning("voicebus_client.unreadable_fact", record=record.coordinates)
            return None

    def _deliver(self, item: T) -> None:
        key = self._waiter_key(item)
        self._cache[key] = item
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        for waiter in self._waiters.pop(key, []):
            if not waiter.done():
                waiter.set_result(item)
        for queue in self._listeners:
            queue.put_nowait(item)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        self._waiters.clear()
        for queue in self._listeners:
            queue.put_nowait(error)

    def expect(self, key: Any) -> asyncio.Future[T]:
        """A future for the item with ``key`` (already resolved if it was seen recently)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if key in self._cache:
            future.set_result(self._cache[key])
        elif self._error is not None:
            future.set_exception(self._error)
        else:
            self._waiters.setdefault(key, []).append(future)
        return future

    def release(self, key: Any, future: asyncio.Future[T]) -> None:
        waiters = self._waiters.get(key)
        if waiters and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[key]

    async def items(self, *, replay: bool) -> AsyncIterator[T]:
        """Every item from now on (after the cached ones when ``replay``)."""
        if self._error is not None:
            raise self._error
        queue: asyncio.Queue[T | BaseException] = asyncio.Queue()
        if replay:
            for item in self._cache.values():
                queue.put_nowait(item)
        self._listeners.add(queue)
        try:
            while True:
                got = await queue.get()
                if isinstance(got, BaseException):
                    raise got
                yield got
        finally:
            self._listeners.discard(queue)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reader.stop()


def _result_key(result: CommandResult) -> tuple[str, str]:
    return (result.command_type, result.command_id)


def _status_key(event: CallStatusEvent) -> str:
    return event.event_id


class VoicebusClient:
    """Publish commands, await their results, follow results and status facts.

    ```python
    async with VoicebusClient(settings) as voicebus:  # KafkaSettings(); or bootstrap_servers=
        result = await voicebus.send(CallConnect.model_validate({...}), timeout=30)
        if result.outcome == "accepted": ...
    ```

    ``settings`` defaults to :class:`KafkaSettings` read from ``KAFKA_*`` variables.
    ``lookback``: how far back the result reader starts (results of commands published
    shortly before, e.g. by a previous attempt of the same ``command_id``, are found too).
    """

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        *,
        bootstrap_servers: str | None = None,
        lookback: timedelta = timedelta(minutes=5),
        client_id: str = "voicebus-client",
        source: str | None = None,
    ) -> None:
        if settings is None:
            settings = (
                KafkaSettings(bootstrap_servers=bootstrap_servers)
                if bootstrap_servers
                else KafkaSettings()
            )
        elif bootstrap_servers:
            settings = settings.model_copy(update={"bootstrap_servers": bootstrap_servers})
        self.settings = settings
        self.lookback = lookback
        self.client_id = client_id
        self.source = source or client_id
        self._producer: Any = None
        self._results: _Watch[CommandResult] | None = None
        self._statuses: _Watch[CallStatusEvent] | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> VoicebusClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect the producer (raises :class:`KafkaUnavailable` when Kafka is not there)."""
        async with self._lock:
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
                client_id=f"{self.client_id}-producer",
                acks="all",
                enable_idempotence=self.settings.enable_idempotence,
                request_timeout_ms=self.settings.request_timeout_ms,
                max_request_size=MAX_MESSAGE_BYTES,
                **security_options(self.settings),
            )
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                raise await start_failed(exc, self.settings) from exc
            self._producer = producer

    async def stop(self) -> None:
        for watch in (self._results, self._statuses):
            if watch is not None:
                await watch.stop()
        self._results = self._statuses = None
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def publish(
        self,
        command: Command,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Published:
        """Validate ``command`` as the executor will, publish it, return where it went.

        ``key`` defaults to :func:`command_key`. ``headers`` (e.g. ``traceparent``) are
        carried; a ``traceparent`` reaches the command's result.
        """
        payload = encode_command(command)
        if self._producer is None:
            await self.start()
        topic = command_type(command)
        key = key or command_key(command)
        all_headers = {
            "ce_specversion": "1.0",
            "ce_id": str(uuid.uuid4()),
            "ce_type": f"voicebus.{topic}",
            "ce_source": self.source,
            "ce_time": datetime.now(UTC).isoformat(),
            "content-type": "application/json",
            **(headers or {}),
        }
        try:
            metadata = await self._producer.send_and_wait(
                topic,
                payload,
                key=key.encode(),
                headers=[(name, value.encode()) for name, value in all_headers.items()],
            )
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            raise kafka_unavailable(exc, self.settings.bootstrap_servers) from exc
        except KafkaError as exc:
            raise VoicebusError(f"publishing to {topic} failed: {exc!r}") from exc
        return Published(command.command_id, topic, metadata.partition, metadata.offset, key)

    async def publish_bytes(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, int]:
        """Publish ``value`` as it is (no validation): ``(partition, offset)``.

        For tools that re-publish what they read (``voicebus dlq republish``).
        """
        if self._producer is None:
            await self.start()
        try:
            metadata = await self._producer.send_and_wait(
                topic,
                value,
                key=key,
                headers=[(name, v.encode()) for name, v in (headers or {}).items()],
            )
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            raise kafka_unavailable(exc, self.settings.bootstrap_servers) from exc
        except KafkaError as exc:
            raise VoicebusError(f"publishing to {topic} failed: {exc!r}") from exc
        return metadata.partition, metadata.offset

    async def send(
        self,
        command: Command,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - the wait for the result, not the call
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        on_published: Callable[[Published], None] | None = None,
    ) -> CommandResult:
        """Publish ``command`` and return its :class:`CommandResult`.

        Raises :class:`CommandNotValid` before publishing when the executor would reject it,
        :class:`ResultTimeout` when no result arrives within ``timeout`` seconds (the
        command may still run: its result will be on the result topic),
        :class:`KafkaUnavailable` when Kafka cannot be reached. ``on_published`` hears
        where the command was written, before the wait for its result begins.
        """
        encode_command(command)  # fail before starting anything
        watch = await self._result_watch()
        wanted = (command_type(command), command.command_id)
        future = watch.expect(wanted)
        try:
            published = await self.publish(command, key=key, headers=headers)
            if on_published is not None:
                on_published(published)
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise ResultTimeout(command.command_id, timeout) from None
        finally:
            watch.release(wanted, future)
            if not future.done():
                future.cancel()

    async def results(
        self,
        *,
        command_id: str | None = None,
        call_sid: str | None = None,
        command_types: tuple[CommandType, ...] | None = None,
    ) -> AsyncIterator[CommandResult]:
        """Results as they arrive (starting with the recent ones the client has seen)."""
        watch = await self._result_watch()
        async for result in watch.items(replay=True):
            if command_id is not None and result.command_id != command_id:
                continue
            if call_sid is not None and result.call_sid != call_sid:
                continue
            if command_types is not None and result.command_type not in command_types:
                continue
            yield result

    async def statuses(
        self,
        *,
        call_sid: str | None = None,
        command_id: str | None = None,
        event_type: str | None = None,
    ) -> AsyncIterator[CallStatusEvent]:
        """``call.status`` facts as they arrive, from ``lookback`` before the first call.

        Deliveries are at least once: the same ``event_id`` can be yielded twice.
        """
        watch = await self._status_watch()
        async for event in watch.items(replay=True):
            if call_sid is not None and event.call_sid != call_sid:
                continue
            if command_id is not None and event.command_id != command_id:
                continue
            if event_type is not None and event.event_type != event_type:
                continue
            yield event

    async def _result_watch(self) -> _Watch[CommandResult]:
        async with self._lock:
            if self._results is None:
                reader = await self._reader(list(RESULT_TOPIC.values()), "results")
                self._results = _Watch(reader, CommandResult, _result_key)
                self._results.start()
            return self._results

    async def _status_watch(self) -> _Watch[CallStatusEvent]:
        async with self._lock:
            if self._statuses is None:
                reader = await self._reader([CALL_STATUS], "statuses")
                self._statuses = _Watch(reader, CallStatusEvent, _status_key)
                self._statuses.start()
            return self._statuses

    async def _reader(self, topics: list[str], name: str) -> TopicReader:
        reader = TopicReader(
            self.settings,
            topics,
            since=datetime.now(UTC) - self.lookback,
            client_id=f"{self.client_id}-{name}",
        )
        return await reader.start()


__all__ = [
    "CommandNotValid",
    "KafkaUnavailable",
    "Published",
    "ResultTimeout",
    "VoicebusClient",
    "command_key",
    "command_type",
    "encode_command",
]
