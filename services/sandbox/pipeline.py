"""What every Exotel API request goes through: log, latency, faults, auth, limits."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.sandbox import clock
from services.sandbox.apirequest import ApiRequest, command_id_of, form_dict, read_body
from services.sandbox.context import Sandbox
from services.sandbox.faults import Injection
from services.sandbox.reqlog import RequestRecord
from services.sandbox.responses import ApiError, ccm_error, v1_error
from services.sandbox.routing import Resolution, api_of, resolve
from services.sandbox.state import Api

log = logging.getLogger("services.sandbox.api")


def render_error(api: Api, key: str, method: str, error: ApiError, *, as_json: bool) -> Response:
    if api == "v1":
        return v1_error(error, as_json=as_json)
    return ccm_error(method, key, error)


def _server_error(status: int, api: Api) -> ApiError:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    code: int | str = status
    if api != "v1" and status >= 500:
        code = 1100
    return ApiError(status, phrase, code=code, description=f"Injected fault: HTTP {status}")


def rate_limited(api: Api, retry_after: float | None) -> ApiError:
    headers = {} if retry_after is None else {"Retry-After": str(max(1, math.ceil(retry_after)))}
    if api == "v1":
        return ApiError(
            429,
            "Too Many Requests",
            code="RATE_LIMIT_EXCEEDED",
            description="Rate limit exceeded, retry later",
            headers=headers,
        )
    return ApiError(
        429, "Too many requests", code=10724, description="Rate limit exceeded", headers=headers
    )


def _raw_fault(injection: Injection) -> Response:
    body = injection.body or ""
    media = "text/plain"
    if body.lstrip().startswith("<"):
        media = "application/xml"
    else:
        try:
            json.loads(body)
            media = "application/json"
        except ValueError:
            pass
    response = Response(body, status_code=injection.status or 500, media_type=media)
    if injection.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(injection.retry_after)))
    return response


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, sep, token = decoded.partition(":")
    return (key, token) if sep else None


def _same(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


def check_auth(sb: Sandbox, request: Request, account: str) -> None:
    """401 for wrong credentials, 404 for an account sid nobody has."""
    accounts = sb.settings.accounts()
    given = _credentials(request)
    valid_for = [
        sid
        for sid, (key, token) in accounts.items()
        if given is not None and _same(given[0], key) & _same(given[1], token)
    ]
    if not valid_for or (account in accounts and account not in valid_for):
        raise ApiError(
            401,
            "Authentication failed",
            code=1010,
            description="Check the API key and token",
            headers={"WWW-Authenticate": 'Basic realm="Exotel"'},
        )
    if account not in accounts:
        raise ApiError(404, "AccountSid not found", code=1017, description=f"{account}")


@dataclass
class ApiRequestParts:
    items: list[tuple[str, str]]
    body: Any
    error: str | None


async def _body_into(request: Request, record: RequestRecord) -> ApiRequestParts:
    items, body, error = await read_body(request)
    record.content_type = request.headers.get("content-type")
    record.form = form_dict(items) if items else None
    record.json = body
    record.command_id = command_id_of(items, body)
    return ApiRequestParts(items, body, error)


async def handle_api(request: Request) -> Response:
    """The single entry point for Exotel's paths."""
    sb: Sandbox = request.app.state.sandbox
    path = request.url.path.rstrip("/") or "/"
    method = request.method.upper()
    record = sb.requests.new(method, path, dict(request.query_params), clock.now())
    parts = await _body_into(request, record)
    resolution = resolve(method, path)
    api = resolution.endpoint.api if resolution.endpoint else api_of(path)
    record.api = api
    record.family = resolution.endpoint.family if resolution.endpoint else None
    record.call_sid = resolution.params.get("call")
    record.leg_sid = resolution.params.get("leg")
    key = resolution.endpoint.ccm_key if resolution.endpoint else "call_details"
    try:
        response = await _process(sb, request, record, resolution=resolution, parts=parts, api=api)
    except ApiError as error:
        response = render_error(api, key, method, error, as_json=resolution.as_json)
        if error.status == 429:
            sb.limiter.note_injected_429(
                resolution.endpoint.family if resolution.endpoint else None
            )
    record.status = response.status_code
    record.answered_at = clock.now()
    log.info(
        "api %s %s -> %s call_sid=%s fault=%s",
        method,
        path,
        response.status_code,
        record.call_sid,
        record.fault,
    )
    return response


async def _process(
    sb: Sandbox,
    request: Request,
    record: RequestRecord,
    *,
    resolution: Resolution,
    parts: ApiRequestParts,
    api: Api,
) -> Response:
    if sb.faults.latency_seconds > 0:
        await asyncio.sleep(sb.faults.latency_seconds)
    injection = sb.faults.pick(record.method, record.path)
    if injection is not None:
        record.fault = injection.label
        if injection.delay_seconds > 0:
            await asyncio.sleep(injection.delay_seconds)
        if injection.status is not None:
            if injection.body is not None:
                return _raw_fault(injection)
            if injection.status == 429:
                raise rate_limited(api, injection.retry_after)
            error = _server_error(injection.status, api)
            if injection.retry_after is not None:
                error.headers["Retry-After"] = str(max(1, math.ceil(injection.retry_after)))
            raise error
    endpoint = resolution.endpoint
    if endpoint is None:
        if resolution.allowed:
            raise ApiError(405, "Method Not Allowed", description=", ".join(resolution.allowed))
        raise ApiError(404, "Not Found", description=f"No such resource {record.path}")
    account = resolution.params["account"]
    check_auth(sb, request, account)
    retry_after = sb.limiter.acquire(account, endpoint.family)
    if retry_after is not None:
        error = rate_limited(api, retry_after)
        return render_error(api, endpoint.ccm_key, record.method, error, as_json=resolution.as_json)
    req = ApiRequest(
        method=record.method,
        path=record.path,
        api=api,
        as_json=resolution.as_json,
        params=resolution.params,
        query=dict(request.query_params),
        record=record,
        form_items=parts.items,
        body_json=parts.body,
        body_error=parts.error,
    )
    return await endpoint.handler(sb, req)
