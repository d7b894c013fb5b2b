"""httpx's failures -> :class:`~services.exotel.errors.ExotelTimeout`, saying whether the
request may have reached Exotel (``maybe_sent``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import httpx

from services.exotel.error_answers import scrub
from services.exotel.errors import ExotelTimeout

__all__ = ["from_transport_error"]

#: httpx errors raised before any byte of the request could have reached Exotel.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
    httpx.LocalProtocolError,
)
_LONG_NUMBER = re.compile(r"\+?\d{7,}")


def from_transport_error(
    exc: httpx.HTTPError, *, endpoint: str, redact: Iterable[str] = ()
) -> ExotelTimeout:
    """Convert an httpx failure into :class:`ExotelTimeout` (use ``raise ... from exc``).

    The message names the endpoint label and the httpx error class; phone-number-like
    digit runs and the given secrets are scrubbed from httpx's own text.
    """
    maybe_sent = not isinstance(exc, _NOT_SENT)
    detail = _LONG_NUMBER.sub("<number>", str(exc))
    text = f"{endpoint}: {type(exc).__name__}"
    if detail:
        text = f"{text}: {detail}"
    return ExotelTimeout(scrub(text, [s for s in redact if s]), maybe_sent=maybe_sent)
