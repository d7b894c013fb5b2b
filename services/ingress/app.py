"""Composition root and the thin HTTP layer of the webhook ingress.

``POST|GET /exotel/callbacks/{token}`` (status callbacks) and ``GET|POST
/exotel/passthru/{token}`` (a call flow's Passthru applet: inbound calls): authenticate
(constant time; the same token and ``sig`` rules on both), bound the body, decode it
(JSON, multipart/form-data, x-www-form-urlencoded, or the GET query), hand it to
:class:`CallbackService` and map its verdict to a status code. A Passthru is answered
within ``INGRESS_PASSTHRU_TIMEOUT_SECONDS`` (its fact spools after
``INGRESS_PASSTHRU_SPOOL_AFTER_SECONDS``), since a sync Passthru holds the caller:

=====  =========================================================================
200    the ``call.status`` fact is durable (Kafka acknowledged it, or it is fsync'd
       to the local spool and will be replayed)
400    unreadable: the raw bytes are on ``call.status.dlq`` (or spooled for it)
401    unknown token, or a ``sig`` that does not match the correlation parameters
       (nothing is published, neither is logged)
413    body larger than ``INGRESS_MAX_BODY_BYTES``
503    not accepting yet (the spool is not open), or nothing durable within
       ``INGRESS_PUBLISH_TIMEOUT_SECONDS``: Exotel retries
=====  =========================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.callback_signature import SIGNATURE_PARAM
from services.common.http import probe_routes
from services.common.kafka_health import KafkaHealth
from services.ingress.metrics import IngressMetrics
from services.ingress.multipart import simple_form
from services.ingress.parsing import (
    CORRELATION_PARAMS,
    MAX_FORM_FIELDS,
    UnreadableCallback,
    decode_json,
    form_to_payload,
)
from services.ingress.service import CallbackService, Outcome, Verdict
from services.ingress.settings import IngressSettings
from services.ingress.sinks import KafkaOutlet, Outlet
from services.ingress.spool import Spool
from services.ingress.spooling import SpoolingOutlet

log = structlog.get_logger("services.ingress")

CALLBACK_PATH = "/exotel/callbacks/{token}"
PASSTHRU_PATH = "/exotel/passthru/{token}"
#: which of the two endpoints a request came to
Endpoint = Literal["callbacks", "passthru"]
# Set by the executor on the callback URL: the correlation and its signature.
_URL_PARAMS = frozenset((*CORRELATION_PARAMS, SIGNATURE_PARAM))
JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
URLENCODED_TYPE = "application/x-www-form-urlencoded"
# After a 413 we still read (and drop) this much so the client sees the answer instead of
# a connection reset; beyond it we close the connection.
DRAIN_LIMIT_BYTES = 1024 * 1024
DRAIN_SECONDS = 2.0
CONNECT_BACKOFF_MAX_SECONDS = 5.0
#: How many signed URLs (command_id, account, api, sig) are remembered as verified; the
#: set starts again empty when full.
VERIFIED_CACHE_SIZE = 10_000
#: The path before ``{token}`` of each endpoint (the plain ASGI path, :class:`IngressApp`).
ENDPOINT_PREFIXES: dict[Endpoint, str] = {
    "callbacks": CALLBACK_PATH.removesuffix("{token}"),
    "passthru": PASSTHRU_PATH.removesuffix("{token}"),
}


class BodyTooLarge(Exception):
    def __init__(self, *, finished: bool) -> None:
        super().__init__("request body too large")
        self.finished = finished  # the client has sent all of it already


@dataclass
class Readiness:
    """``accepting``: the outlet started (callbacks are made durable from then on).

    ``/readyz`` answers 200 once the outlet also says it is ``ready`` (with the spool: Kafka
    was reached and the topics exist, at least once) and keeps answering 200 while Kafka is
    away and callbacks are spooled: the ingress still accepts them.
    """

    accepting: bool = False
    error: str | None = None
    outlet: Outlet | None = None

    def check(self) -> tuple[bool, dict[str, object]]:
        ready = self.accepting and (self.outlet is None or self.outlet.ready)
        detail: dict[str, object] = {"kafka": "connected" if ready else "connecting"}
        if self.accepting and self.outlet is not None:
            detail |= self.outlet.status()
        if not self.accepting and self.error:
            detail["last_error"] = self.error
        return ready, detail


# --------------------------------------------------------------------------- request decoding


def media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == JSON_TYPE or (media.startswith("application/") and media.endswith("+json"))


async def _next_chunk(request: Request) -> tuple[bytes, bool]:
    """The next body chunk and whether more comes, straight off the ASGI channel
    (resumable, unlike ``stream()``; a plain coroutine, not an async generator: the loop
    tracks each generator, a cost per callback)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        if message["type"] == "http.request":
            return message.get("body", b""), bool(message.get("more_body", False))


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, or :class:`BodyTooLarge` as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(finished=False)
    chunks: list[bytes] = []
    total = 0
    more = True
    while more:
        chunk, more = await _next_chunk(request)
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(finished=not more)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def drain(request: Request) -> bool:
    """Read and drop the rest of a refused body (bounded); True when it was all read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_LIMIT_BYTES:
        return False
    total = 0
    more = True
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while more:
                chunk, more = await _next_chunk(request)
                total += len(chunk)
                if total > DRAIN_LIMIT_BYTES:
                    return False
    except (TimeoutError, ClientDisconnect):
        return False
    return True


async def form_pairs(request: Request, body: bytes, max_part_size: int) -> list[tuple[str, str]]:
    """Form fields of ``body`` via starlette's parsers (python-multipart), with limits."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    replayed = Request(request.scope, replay)
    try:
        form = await replayed.form(
            max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=max_part_size
        )
    except (HTTPException, MultiPartException) as exc:
        detail = exc.detail if isinstance(exc, HTTPException) else exc.message
        raise UnreadableCallback(f"form body cannot be parsed: {detail}") from exc
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise UnreadableCallback(f"form body cannot be parsed: {type(exc).__name__}") from exc
    try:
        pairs: list[tuple[str, str]] = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):  # pragma: no cover - max_files=0 refuses files
                raise UnreadableCallback("form body carries a file")
            pairs.append((key, value))
        return pairs
    finally:
        await form.close()


async def decode_body(
    request: Request, body: bytes, content_type: str, max_part_size: int
) -> dict[str, Any]:
    """The payload of a POST body, by content type (JSON sniffed when the type is off)."""
    media = media_type(content_type)
    if not body.strip():
        raise UnreadableCallback("empty body")
    if is_json(media):
        return decode_json(body)
    if media == MULTIPART_TYPE:
        simple = simple_form(
            body, content_type, max_fields=MAX_FORM_FIELDS, max_part_size=max_part_size
        )
        if simple is not None:  # plain text fields, as Exotel sends them
            return form_to_payload(simple)
    if media in (MULTIPART_TYPE, URLENCODED_TYPE):
        return form_to_payload(await form_pairs(request, body, max_part_size))
    if body.lstrip().startswith(b"{"):  # no or a wrong content type, but JSON nonetheless
        return decode_json(body)
    raise UnreadableCallback(f"unsupported content type {media or '(none)'!r}")


# --------------------------------------------------------------------------- the route


class CallbackEndpoint:
    def __init__(
        self,
        *,
        settings: IngressSettings,
        service: CallbackService,
        metrics: IngressMetrics,
        readiness: Readiness,
        endpoint: Endpoint = "callbacks",
    ) -> None:
        self._endpoint: Endpoint = endpoint
        self._log_event = "ingress.callback" if endpoint == "callbacks" else "ingress.passthru"
        self._tokens = settings.accepted_tokens()
        self._signer = settings.signer()
        #: correlation parameters with their sig already verified (HMAC is deterministic)
        self._verified: set[tuple[tuple[str, str], ...]] = set()
        #: query strings of signed URLs without payload parameters (the POST callbacks of a
        #: command all come to one URL): their correlation, verified, as :meth:`signed_query`
        #: found it. Bounded like ``_verified``.
        self._signed_queries: dict[bytes, dict[str, str]] = {}
        self._max_body = settings.max_body_bytes
        self._service = service
        self._metrics = metrics
        self._answer_seconds = metrics.answer_seconds.labels(endpoint)
        self._readiness = readiness

    def authorised(self, token: str) -> bool:
        offered = token.encode("utf-8", errors="surrogateescape")
        matches = [hmac.compare_digest(offered, accepted) for accepted in self._tokens]
        return any(matches)  # every token compared: no early exit

    def signed(self, items: list[tuple[str, str]]) -> bool:
        """Whether ``sig`` matches the correlation parameters (each present at most once)."""
        names = [k for k, _ in items if k in _URL_PARAMS]
        if len(names) != len(set(names)):
            return False  # a repeated parameter could be read differently from how it signed
        values = {k: v for k, v in items if k in _URL_PARAMS}
        seen = tuple(sorted(values.items()))
        if seen in self._verified:  # the same URL again: every callback of one command
            return True
        signature = values.pop(SIGNATURE_PARAM, None)
        if not self._signer.verify(values, signature):
            return False
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified.add(seen)
        return True

    def signed_query(self, request: Request) -> tuple[dict[str, str], list[tuple[str, str]]] | None:
        """The correlation parameters and the payload parameters of the request's query,
        or ``None`` when its ``sig`` does not match (:meth:`signed`)."""
        raw = bytes(request.scope.get("query_string", b""))
        known = self._signed_queries.get(raw)
        if known is not None:  # this very query string was parsed and verified before
            return known, []
        items = request.query_params.multi_items()
        if not self.signed(items):
            return None
        query = {k: v for k, v in items if k in CORRELATION_PARAMS}
        query_payload = [(k, v) for k, v in items if k not in _URL_PARAMS]
        if not query_payload:
            if len(self._signed_queries) >= VERIFIED_CACHE_SIZE:
                self._signed_queries.clear()
            self._signed_queries[raw] = query
        return query, query_payload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The endpoint as a plain ASGI app: what starlette's ``Route`` does for it (a
        :class:`Request`, the handler, the response), without the layers between."""
        response = await self.handle(Request(scope, receive, send))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await self._answer(request, started)
        finally:
            self._answer_seconds.observe(time.perf_counter() - started)

    async def _answer(self, request: Request, started: float) -> Response:
        received_at = datetime.now(UTC)
        if request.method not in ("GET", "POST"):  # starlette adds HEAD to GET routes
            return Response(status_code=405, headers={"Allow": "GET, POST"})
        if not self.authorised(str(request.path_params.get("token", ""))):
            self._metrics.rejected.labels("unauthorized").inc()
            log.warning(self._log_event, outcome="unauthorized", status_code=401)
            return JSONResponse({"error": "unauthorized"}, status_code=401)

        signed = self.signed_query(request)
        if signed is None:
            self._metrics.rejected.labels("bad_signature").inc()
            log.warning(self._log_event, outcome="bad_signature", status_code=401)
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        query, query_payload = signed
        # One line per callback, its fields passed, not bound: binding context variables
        # costs more than the line itself (bench/RESULTS.md).
        response, outcome = await self._handle(request, query, query_payload, received_at)
        event = outcome.event if outcome else None
        emit = log.info if response.status_code < 500 else log.warning
        emit(
            self._log_event,
            outcome=outcome.verdict.value if outcome else "too_large",
            command_id=query.get("command_id"),
            method=request.method,
            status_code=response.status_code,
            call_sid=event.call_sid if event else None,
            leg_sid=event.leg_sid if event else None,
            event_type=event.event_type if event else None,
            api=event.api if event else None,
            status=event.status if event else None,
            event_id=event.event_id if event else None,
            reason=outcome.reason if outcome else None,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    async def _handle(
        self,
        request: Request,
        query: dict[str, str],
        query_payload: list[tuple[str, str]],
        received_at: datetime,
    ) -> tuple[Response, Outcome | None]:
        content_type = request.headers.get("content-type", "")
        body = b""
        if request.method != "GET":
            try:
                body = await read_limited(request, self._max_body)
            except BodyTooLarge as exc:
                self._metrics.rejected.labels("too_large").inc()
                drained = exc.finished or await drain(request)
                headers = {} if drained else {"Connection": "close"}
                return JSONResponse(
                    {"error": "too_large", "limit_bytes": self._max_body},
                    status_code=413,
                    headers=headers,
                ), None
            except ClientDisconnect:
                return Response(status_code=400), Outcome(
                    Verdict.UNREADABLE, reason="client disconnected"
                )
        if not self._readiness.accepting:
            self._metrics.rejected.labels("unavailable").inc()
            unready = Outcome(Verdict.UNAVAILABLE, reason="not ready to accept callbacks yet")
            return self._respond(unready), unready
        # GET callbacks (and a POST with an empty body) carry the payload in the query
        # string; the query string is then what a dead letter keeps.
        from_query = request.method == "GET" or (not body.strip() and bool(query_payload))
        if from_query:
            body = bytes(request.scope.get("query_string", b""))
            content_type = URLENCODED_TYPE
        try:
            if from_query:
                payload = form_to_payload(query_payload)
            else:
                payload = await decode_body(request, body, content_type, self._max_body)
        except UnreadableCallback as exc:
            outcome = await self._service.reject(
                raw_body=body,
                reason=exc.reason,
                content_type=content_type,
                received_at=received_at,
            )
        else:
            outcome = await self._service.ingest(
                payload,
                query=query,
                raw_body=body,
                content_type=content_type,
                received_at=received_at,
                passthru=self._endpoint == "passthru",
            )
        return self._respond(outcome), outcome

    @staticmethod
    def _respond(outcome: Outcome) -> Response:
        if outcome.verdict is Verdict.ACCEPTED and outcome.event is not None:
            return Response(accepted_body(outcome.event.event_id), media_type=JSON_TYPE)
        if outcome.verdict is Verdict.UNREADABLE:
            return JSONResponse({"error": "unreadable", "reason": outcome.reason}, status_code=400)
        return JSONResponse(
            {"error": "unavailable", "reason": "try again later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )


def accepted_body(event_id: str) -> bytes:
    """``{"status":"accepted","event_id":…}`` as ``JSONResponse`` renders it (an event id
    is a UUID: nothing in it needs escaping)."""
    return b'{"status":"accepted","event_id":"' + event_id.encode("ascii") + b'"}'


class IngressApp(Starlette):
    """The ingress's starlette app, with the two callback endpoints reached directly.

    A ``GET`` or ``POST`` to ``/exotel/callbacks/{token}`` or ``/exotel/passthru/{token}``
    goes straight to its :class:`CallbackEndpoint` behind starlette's
    ``ServerErrorMiddleware`` (an unexpected error is still a 500 and is raised to the
    server), without the exception middleware, the router and the route's wrappers: they
    cost more than a callback's answer and do nothing for it (the endpoint raises no
    ``HTTPException``). Every other request (the probes, ``/metrics``, another method,
    another path, a ``root_path``) and the lifespan go through starlette as before.
    """

    def __init__(self, *, endpoints: dict[Endpoint, CallbackEndpoint], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._direct: list[tuple[str, ASGIApp]] = [
            (ENDPOINT_PREFIXES[which], ServerErrorMiddleware(endpoint))
            for which, endpoint in endpoints.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "POST")
            and not scope.get("root_path")
        ):
            path: str = scope["path"]
            for prefix, endpoint in self._direct:
                token = path[len(prefix) :] if path.startswith(prefix) else ""
                if token and "/" not in token:  # what the route's {token} matches
                    scope["app"] = self
                    scope["path_params"] = {"token": token}
                    await endpoint(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


# --------------------------------------------------------------------------- composition


async def connect_until_ready(
    outlet: Outlet, readiness: Readiness, metrics: IngressMetrics
) -> None:
    """Start the outlet (topics, producer), retrying with backoff until it works."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await outlet.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            readiness.error = type(exc).__name__
            log.warning("ingress.kafka.connect_failed", attempt=attempt, error=repr(exc))
        except Exception as exc:
            # Unexpected, but readiness must keep trying rather than die silently.
            readiness.error = type(exc).__name__
            log.exception("ingress.kafka.connect_failed", attempt=attempt)
        else:
            readiness.accepting = True
            readiness.error = None
            metrics.ready.set(1)
            log.info("ingress.ready", attempts=attempt)
            return
        await asyncio.sleep(min(0.25 * 2 ** min(attempt, 5), CONNECT_BACKOFF_MAX_SECONDS))


def spooling_outlet(settings: IngressSettings, metrics: IngressMetrics) -> SpoolingOutlet:
    """Kafka, with the local spool behind it (the outlet the service runs with)."""
    health = KafkaHealth()
    return SpoolingOutlet(
        KafkaOutlet(settings.kafka, health, linger_ms=settings.kafka_linger_ms),
        Spool(settings.spool_dir, segment_bytes=settings.spool_segment_bytes),
        metrics=metrics,
        spool_after_seconds=settings.spool_after_seconds,
        health=health,
    )


def create_app(
    settings: IngressSettings,
    *,
    outlet: Outlet | None = None,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """The ingress as an ASGI app. ``outlet`` defaults to Kafka behind the local spool."""
    registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
    metrics = IngressMetrics(registry)
    sinks: Outlet = outlet if outlet is not None else spooling_outlet(settings, metrics)
    readiness = Readiness(outlet=sinks)
    flow_facts = (
        sinks.facts_within(settings.passthru_spool_after_seconds)
        if isinstance(sinks, SpoolingOutlet)
        else sinks.facts
    )
    service = CallbackService(
        facts=sinks.facts,
        dead_letters=sinks.dead_letters,
        metrics=metrics,
        tz=settings.tz,
        publish_timeout_seconds=settings.publish_timeout_seconds,
        flow_facts=flow_facts,
        flow_timeout_seconds=settings.passthru_timeout_seconds,
    )
    callbacks, passthru = (
        CallbackEndpoint(
            settings=settings,
            service=service,
            metrics=metrics,
            readiness=readiness,
            endpoint=which,
        )
        for which in ("callbacks", "passthru")
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        connecting = asyncio.create_task(connect_until_ready(sinks, readiness, metrics))
        try:
            yield
        finally:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            readiness.accepting = False
            metrics.ready.set(0)
            await sinks.stop()
            log.info("ingress.stopped")

    routes: list[BaseRoute] = [
        Route(CALLBACK_PATH, callbacks.handle, methods=["GET", "POST"]),
        Route(PASSTHRU_PATH, passthru.handle, methods=["GET", "POST"]),
        *probe_routes(readiness.check, registry),
    ]
    app = IngressApp(
        endpoints={"callbacks": callbacks, "passthru": passthru}, routes=routes, lifespan=lifespan
    )
    app.state.readiness = readiness
    app.state.metrics = metrics
    return app
