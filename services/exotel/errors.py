"""The one exception tree for everything that goes wrong at the Exotel boundary.

::

    ExotelError (http_status, exotel_code, message, retryable, maybe_sent)
    ├── ExotelTransientError          retryable=True; retry_after: float | None
    │   ├── ExotelUnavailable         HTTP 5xx
    │   ├── ExotelTimeout             httpx timeouts / connection errors (and HTTP 408)
    │   └── ExotelRateLimited         429, RestException Code RATE_LIMIT_EXCEEDED, v3 code 10724
    └── ExotelPermanentError          retryable=False
        ├── ExotelAuthError           401 / 403
        ├── ExotelNotFound            404
        ├── ExotelRejected            any other 4xx (409 10706 busy device, 400 bad params ...)
        └── ExotelInvalidResponse     a 2xx whose body cannot be read as the expected answer

``maybe_sent`` answers "may Exotel have acted on this request?", which is what decides
whether a retry could duplicate a call:

* connection never made (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``): False
* request written, answer lost (``ReadTimeout``, ``WriteTimeout``, ``ReadError``,
  ``RemoteProtocolError``, ...): True
* Exotel answered 4xx / 429: False (it refused); 5xx: True (it may have half-acted);
  unreadable 2xx: True.

Exotel's own codes are kept as strings (``"10706"``, ``"RATE_LIMIT_EXCEEDED"``). Messages
never contain credentials: they are built from Exotel's error body or the status line,
never from request headers or URLs, and known secrets can be scrubbed with ``redact``.

Exotel's answers become these in :mod:`services.exotel.error_answers` and httpx's
failures in :mod:`services.exotel.transport_errors`. Each class carries the
``CommandResult`` error code it stands for (``code``): that is the only place the
mapping is written.
"""

from __future__ import annotations

from typing import ClassVar

from contracts.results import ErrorCode

__all__ = [
    "ExotelAuthError",
    "ExotelError",
    "ExotelInvalidResponse",
    "ExotelNotFound",
    "ExotelPermanentError",
    "ExotelRateLimited",
    "ExotelRejected",
    "ExotelTimeout",
    "ExotelTransientError",
    "ExotelUnavailable",
]


class ExotelError(Exception):
    """Base of every error raised by the Exotel client."""

    retryable: ClassVar[bool] = False
    #: The ``CommandResult`` error code this error stands for (the one mapping).
    code: ClassVar[ErrorCode] = "exotel_rejected"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        exotel_code: str | None = None,
        description: str | None = None,
        maybe_sent: bool = False,
    ) -> None:
        self.message = message
        self.http_status = http_status
        self.exotel_code = exotel_code
        self.description = description
        self.maybe_sent = maybe_sent
        super().__init__(message)

    def __str__(self) -> str:
        parts: list[str] = []
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.exotel_code is not None:
            parts.append(f"[{self.exotel_code}]")
        parts.append(self.message)
        if self.description and self.description != self.message:
            parts.append(f"({self.description})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(http_status={self.http_status!r}, "
            f"exotel_code={self.exotel_code!r}, message={self.message!r}, "
            f"retryable={self.retryable!r}, maybe_sent={self.maybe_sent!r})"
        )


class ExotelTransientError(ExotelError):
    """Worth retrying later (with backoff, honouring ``retry_after`` when set)."""

    retryable: ClassVar[bool] = True
    code: ClassVar[ErrorCode] = "exotel_unavailable"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        exotel_code: str | None = None,
        description: str | None = None,
        maybe_sent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            http_status=http_status,
            exotel_code=exotel_code,
            description=description,
            maybe_sent=maybe_sent,
        )
        self.retry_after = retry_after


class ExotelUnavailable(ExotelTransientError):
    """Exotel answered 5xx."""

    code: ClassVar[ErrorCode] = "exotel_unavailable"


class ExotelTimeout(ExotelTransientError):
    """No usable answer: timeout or connection failure (``maybe_sent`` says which side)."""

    code: ClassVar[ErrorCode] = "exotel_timeout"


class ExotelRateLimited(ExotelTransientError):
    """Exotel said "too many requests"; ``retry_after`` is seconds to wait, when known."""

    code: ClassVar[ErrorCode] = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        exotel_code: str | None = None,
        description: str | None = None,
        maybe_sent: bool = False,
        retry_after: float | None = None,
        remaining: int | None = None,
    ) -> None:
        super().__init__(
            message,
            http_status=http_status,
            exotel_code=exotel_code,
            description=description,
            maybe_sent=maybe_sent,
            retry_after=retry_after,
        )
        self.remaining = remaining


class ExotelPermanentError(ExotelError):
    """Retrying the same request will not help."""

    retryable: ClassVar[bool] = False
    code: ClassVar[ErrorCode] = "exotel_rejected"


class ExotelAuthError(ExotelPermanentError):
    """401/403: wrong credentials or the API is not enabled for the account."""

    code: ClassVar[ErrorCode] = "exotel_auth"


class ExotelNotFound(ExotelPermanentError):
    """404: unknown call, leg, account or number."""

    code: ClassVar[ErrorCode] = "exotel_not_found"


class ExotelRejected(ExotelPermanentError):
    """Any other 4xx: invalid parameters, busy device (10706), not allowed, ..."""

    code: ClassVar[ErrorCode] = "exotel_rejected"


class ExotelInvalidResponse(ExotelPermanentError):
    """A 2xx whose body is unreadable or lacks what the API promises.

    Exotel did receive the request (``maybe_sent`` is True): reconcile, do not resend.
    """

    code: ClassVar[ErrorCode] = "exotel_rejected"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        exotel_code: str | None = None,
        description: str | None = None,
        maybe_sent: bool = True,
    ) -> None:
        super().__init__(
            message,
            http_status=http_status,
            exotel_code=exotel_code,
            description=description,
            maybe_sent=maybe_sent,
        )
