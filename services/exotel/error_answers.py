"""Exotel's error answers -> the exception tree of :mod:`services.exotel.errors`.

:func:`parse_error_response` understands every error shape in Exotel's documentation:

* v1 XML ``<TwilioResponse><RestException><Status/><Code/><Message/></RestException>``
  (any tag case),
* v1 JSON ``{V1.REST_EXCEPTION: {"Status"|"Code", "Message", "Description"}}`` (any key case),
* v2/v3 JSON ``{"http_code": .., "response": {"code": .., "status": "failure",
  "error_data": {"code": .., "description": .., "message": ..}}}``,
* anything else (HTML, empty): the message comes from the HTTP status line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import httpx

from services.exotel._payload import PayloadError, ci_get, first_of, load_payload
from services.exotel.errors import (
    ExotelAuthError,
    ExotelError,
    ExotelNotFound,
    ExotelRateLimited,
    ExotelRejected,
    ExotelTimeout,
    ExotelUnavailable,
)
from services.exotel.fields import V1, Ccm

__all__ = ["is_failure_payload", "parse_error_response", "parse_retry_after", "scrub"]

MAX_MESSAGE_CHARS = 500
RATE_LIMIT_CODES = frozenset({"RATE_LIMIT_EXCEEDED", "10724"})
#: Exotel codes meaning "the agent's device is busy": a rejection, whatever the HTTP status
#: (the v2/v3 tables list 10706 under both 409 and 404).
BUSY_CODES = frozenset({"10706"})


def parse_error_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime | None = None,
    redact: Iterable[str] = (),
) -> ExotelError:
    """Turn an Exotel error answer into the right :class:`ExotelError` subclass.

    ``status`` is the HTTP status. A 2xx whose body says ``"status": "failure"`` is also
    accepted: the body's ``http_code`` / ``response.code`` is then used for classification.
    ``redact`` lists secret strings that must not survive into the message.
    """
    secrets = [s for s in redact if s]
    try:
        payload: Any = load_payload(body)
    except PayloadError:
        payload = None

    code, message, description, body_status = _extract(payload)
    effective = status
    if 200 <= status < 300 and body_status is not None and body_status >= 400:
        effective = body_status

    if not message:
        message = _status_line(effective)
    message = scrub(message, secrets)
    description = scrub(description, secrets) if description else None
    if description == message:
        description = None

    kwargs: dict[str, Any] = {
        "http_status": status,
        "exotel_code": code,
        "description": description,
    }
    code_upper = code.upper() if code else None

    if effective == 429 or (code_upper is not None and code_upper in RATE_LIMIT_CODES):
        retry_after, remaining = _rate_limit_headers(headers, now)
        return ExotelRateLimited(message, retry_after=retry_after, remaining=remaining, **kwargs)
    if code is not None and code in BUSY_CODES:
        return ExotelRejected(message, **kwargs)
    if effective >= 500:
        return ExotelUnavailable(
            message, maybe_sent=True, retry_after=parse_retry_after(headers, now), **kwargs
        )
    if effective == 408:
        return ExotelTimeout(message, maybe_sent=False, **kwargs)
    if effective in (401, 403):
        return ExotelAuthError(message, **kwargs)
    if effective == 404:
        return ExotelNotFound(message, **kwargs)
    if 400 <= effective < 500:
        return ExotelRejected(message, **kwargs)
    # 1xx/3xx (redirects are never followed: they could carry credentials elsewhere) or a
    # 2xx that says "failure" without a usable code.
    return ExotelRejected(message, **kwargs)


def _extract(payload: Any) -> tuple[str | None, str | None, str | None, int | None]:
    """(exotel_code, message, description, status_in_body) from any documented shape."""
    if not isinstance(payload, Mapping):
        return None, None, None, None

    rest = ci_get(payload, V1.REST_EXCEPTION)
    if rest is None:
        twilio = ci_get(payload, V1.TWILIO_RESPONSE)
        rest = ci_get(twilio, V1.REST_EXCEPTION)
    if isinstance(rest, Mapping):
        raw_status = ci_get(rest, V1.STATUS)
        raw_code = first_of(rest, V1.CODE)
        code = _as_code(raw_code if raw_code is not None else raw_status)
        body_status = _as_int(raw_status)
        numeric_code = _as_int(raw_code)
        if body_status is None and numeric_code is not None and 400 <= numeric_code < 600:
            body_status = numeric_code
        return (
            code,
            _as_text(ci_get(rest, V1.MESSAGE)),
            _as_text(ci_get(rest, V1.DESCRIPTION)),
            body_status,
        )

    response = ci_get(payload, Ccm.RESPONSE)
    if isinstance(response, Mapping):
        error_data = ci_get(response, Ccm.ERROR_DATA)
        body_status = _as_int(ci_get(payload, Ccm.HTTP_CODE))
        if body_status is None:
            body_status = _as_int(ci_get(response, Ccm.CODE))
        if isinstance(error_data, Mapping):
            return (
                _as_code(ci_get(error_data, Ccm.CODE)),
                _as_text(first_of(error_data, Ccm.MESSAGE, Ccm.DESCRIPTION)),
                _as_text(ci_get(error_data, Ccm.DESCRIPTION)),
                body_status,
            )
        return None, None, None, body_status
    return None, None, None, None


def is_failure_payload(payload: Any) -> bool:
    """True when a decoded 2xx body is really an error (RestException, v2/v3 failure)."""
    if not isinstance(payload, Mapping):
        return False
    if ci_get(payload, V1.REST_EXCEPTION) is not None:
        return True
    twilio = ci_get(payload, V1.TWILIO_RESPONSE)
    if ci_get(twilio, V1.REST_EXCEPTION) is not None:
        return True
    response = ci_get(payload, Ccm.RESPONSE)
    if isinstance(response, Mapping):
        status = ci_get(response, Ccm.STATUS)
        if isinstance(status, str) and status.lower() == "failure":
            return True
        if ci_get(response, Ccm.ERROR_DATA) is not None:
            return True
    http_code = _as_int(ci_get(payload, Ccm.HTTP_CODE))
    return http_code is not None and http_code >= 400


def _as_code(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP status {status}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` without the given secrets, cut to :data:`MAX_MESSAGE_CHARS`."""
    for secret in secrets:
        text = text.replace(secret, "***")
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if isinstance(headers, httpx.Headers):
        found: str | None = headers.get(name)
        return found
    lname = name.lower()
    for key, value in headers.items():
        if key.lower() == lname:
            return value
    return None


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or HTTP-date), else None."""
    value = _header(headers, "Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _rate_limit_headers(
    headers: Mapping[str, str], now: datetime | None
) -> tuple[float | None, int | None]:
    remaining = _as_int(_header(headers, "X-RateLimit-Remaining"))
    retry_after = parse_retry_after(headers, now)
    if retry_after is None:
        reset = _header(headers, "X-RateLimit-Reset")
        if reset is not None:
            retry_after = _reset_to_seconds(reset, now)
    if retry_after is None and remaining is not None and remaining > 0:
        # The window is not exhausted; the limit tripped elsewhere: no wait is implied.
        retry_after = 0.0
    return retry_after, remaining


def _reset_to_seconds(value: str, now: datetime | None) -> float | None:
    """``X-RateLimit-Reset`` is either seconds-until-reset or an epoch timestamp."""
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number > 1e12:  # epoch milliseconds
        number /= 1000.0
    if number > 1e9:  # epoch seconds
        current = (now or datetime.now(UTC)).timestamp()
        return max(0.0, number - current)
    return max(0.0, number)
