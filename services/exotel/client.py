"""The async Exotel client: one method per Exotel endpoint voicebus uses.

Each method makes exactly one HTTP request (``bulk_call_details`` one per page); retries,
backoff and reconciliation belong to the caller, guided by the error's ``retryable`` and
``maybe_sent``. Before each request the client waits on the :class:`Throttle` for the
account and API family; after it, the :class:`RequestObserver` hears the endpoint label,
status and duration, and one log line is written (endpoint, status, elapsed; never
credentials, URLs or phone numbers).

v1 requests always use the ``.json`` variants with form-encoded bodies; v2/v3 send JSON.
Credentials go in a per-request ``Authorization: Basic`` header, never in the URL.

Requests with an effect (placing a call, creating, upgrading or hanging up a leg) arrive
built (:mod:`services.exotel.requests`, from ``services/executor/mapping/``); the client
sends them as given. A caller that must do something between the rate limiter's grant and
the request (the executor records its intent there) waits for the :class:`Slot` itself
with :meth:`ExotelClient.wait_for_slot` and passes it along; otherwise each method waits.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Protocol, TypeVar

import httpx
import structlog
from pydantic import ValidationError

from services.exotel._payload import PayloadError, load_payload
from services.exotel.accounts import ApiFamily, ApiVersion, ExotelAccount
from services.exotel.error_answers import is_failure_payload, parse_error_response
from services.exotel.errors import (
    ExotelError,
    ExotelInvalidResponse,
    ExotelRateLimited,
    ExotelRejected,
)
from services.exotel.models import (
    ActiveLeg,
    CallDetails,
    CompletedCallLeg,
    Leg,
    PlacedCall,
    V3CallLegs,
    bulk_page,
)
from services.exotel.requests import (
    ConnectRequest,
    HangupRequest,
    MonitorLegRequest,
    MonitorUpgradeRequest,
    V1ConnectRequest,
)
from services.exotel.transport_errors import from_transport_error

__all__ = [
    "ExotelClient",
    "RequestObserver",
    "Slot",
    "Throttle",
]

logger = structlog.get_logger("services.exotel")
T = TypeVar("T")

#: Exotel call and leg sids are opaque alphanumerics; anything else never reaches a URL.
_SID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_FILTER_NUMBERS = 5
DEFAULT_MAX_PAGES = 100


class Throttle(Protocol):
    """Rate limiting per account and API family (``voice``, ``get``, ``legs``)."""

    async def acquire(self, account: str, family: ApiFamily) -> None:
        """Wait until one more request of ``family`` may be sent for ``account``."""
        ...

    def penalise(self, account: str, family: ApiFamily, retry_after: float | None) -> None:
        """Exotel answered 429: slow ``family`` down (for ``retry_after`` seconds if known)."""
        ...


class RequestObserver(Protocol):
    """Hears about every request (for metrics). ``endpoint`` is a bounded label such as
    ``v1.connect`` or ``v3.calls.get``, never a sid or number; ``status`` is ``None`` when
    no HTTP answer arrived."""

    def observe(
        self, *, account: str, endpoint: str, method: str, status: int | None, seconds: float
    ) -> None: ...


class Slot:
    """The rate limiter's grant for one request of ``family``: spent by that request."""

    def __init__(self, family: ApiFamily) -> None:
        self.family = family
        self._spent = False

    def spend(self, family: ApiFamily) -> None:
        if self._spent:
            raise ValueError("a rate-limiter slot is good for one request only")
        if family != self.family:
            raise ValueError(f"a {self.family!r} slot cannot send a {family!r} request")
        self._spent = True


@dataclass(frozen=True)
class _Request:
    endpoint: str
    family: ApiFamily
    method: str
    url: str
    params: Mapping[str, str] | None = None
    data: Mapping[str, str] | None = None
    json: Mapping[str, Any] | None = None
    log_fields: Mapping[str, str] = field(default_factory=dict)


class ExotelClient:
    """Calls Exotel for one account over a shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        account: ExotelAccount,
        http: httpx.AsyncClient,
        *,
        throttle: Throttle | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        self._account = account
        self._http = http
        self._throttle = throttle
        self._observer = observer
        key, token = account.secrets()
        self._auth = httpx.BasicAuth(key, token)
        basic = base64.b64encode(f"{key}:{token}".encode()).decode()
        self._secrets = (key, token, basic)

    def __repr__(self) -> str:
        return f"ExotelClient(account={self._account.name!r})"

    @property
    def account(self) -> ExotelAccount:
        return self._account

    # ------------------------------------------------------------------ URLs

    def _v1(self, *segments: str) -> str:
        path = "/".join(segments)
        return f"{self._account.v1_base}/v1/Accounts/{self._account.account_sid}/{path}"

    def _ccm(self, api: str, *segments: str) -> str:
        path = "/".join(segments)
        return f"{self._account.ccm_base}/{api}/accounts/{self._account.account_sid}/{path}"

    # ------------------------------------------------------------------ calls

    async def wait_for_slot(self, family: ApiFamily) -> Slot:
        """Wait for the rate limiter's grant of one request of ``family`` for this account."""
        if self._throttle is not None:
            await self._throttle.acquire(self._account.name, family)
        return Slot(family)

    async def place_call(self, request: ConnectRequest, *, slot: Slot | None = None) -> PlacedCall:
        """v1: ``POST /v1/Accounts/{sid}/Calls/connect.json`` with the request's form;
        v2/v3: ``POST {ccm_base}/{api}/accounts/{sid}/calls`` with its JSON body."""
        if isinstance(request, V1ConnectRequest):
            url = self._v1("Calls", "connect.json")
            payload = await self._send(
                _Request("v1.connect", "voice", "POST", url, data=request.form), slot
            )
            placed = self._parse("v1.connect", lambda: PlacedCall.from_v1(payload))
            logger.debug("exotel.call.placed", endpoint="v1.connect", call_sid=placed.call_sid)
            return placed
        api = request.api
        _check_ccm(api)
        endpoint = f"{api}.calls.create"
        payload = await self._send(
            _Request(endpoint, "voice", "POST", self._ccm(api, "calls"), json=request.body), slot
        )
        return self._parse(endpoint, lambda: PlacedCall.from_ccm(api, payload))

    async def call_details(self, call_sid: str, api: ApiVersion | None = None) -> CallDetails:
        """One call's details through ``api`` (default: the account's API).

        v1: ``GET /v1/Accounts/{sid}/Calls/{call_sid}.json?details=true`` (leg statuses
        included); v2/v3: ``GET {ccm_base}/{api}/accounts/{sid}/calls/{call_sid}``.
        """
        api = api or self._account.api
        sid = _check_sid(call_sid, "call_sid")
        tz = self._account.zone
        if api == "v1":
            payload = await self._send(
                _Request(
                    "v1.calls.get",
                    "get",
                    "GET",
                    self._v1("Calls", f"{sid}.json"),
                    params={"details": "true"},
                    log_fields={"call_sid": sid},
                )
            )
            return self._parse("v1.calls.get", lambda: CallDetails.from_v1_response(payload, tz))
        _check_ccm(api)
        endpoint = f"{api}.calls.get"
        payload = await self._send(
            _Request(
                endpoint, "get", "GET", self._ccm(api, "calls", sid), log_fields={"call_sid": sid}
            )
        )
        return self._parse(endpoint, lambda: CallDetails.from_ccm(api, payload, tz))

    async def bulk_call_details(
        self,
        *,
        from_numbers: Sequence[str] = (),
        to_numbers: Sequence[str] = (),
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        page_size: int = 100,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> list[CallDetails]:
        """Finished calls matching the filters (``GET /v1/Accounts/{sid}/Calls.json``),
        following ``Metadata.NextPageUri`` for at most ``max_pages`` pages.

        ``created_from``/``created_to`` must be timezone-aware; they are sent as
        ``DateCreated=gte:...;lte:...`` in the account's zone. At most 5 numbers per filter.
        """
        if not 1 <= page_size <= 100:
            raise ValueError("page_size must be between 1 and 100")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        params: dict[str, str] = {"PageSize": str(page_size), "details": "true"}
        for name, numbers in (("From", from_numbers), ("To", to_numbers)):
            if isinstance(numbers, str):
                raise TypeError(f"{name} numbers must be a sequence of strings, not a string")
            if len(numbers) > MAX_FILTER_NUMBERS:
                raise ValueError(f"Exotel accepts at most {MAX_FILTER_NUMBERS} {name} numbers")
            if numbers:
                params[name] = ",".join(numbers)
        date_filter = self._date_created_filter(created_from, created_to)
        if date_filter:
            params["DateCreated"] = date_filter

        tz = self._account.zone
        prefix = f"/v1/Accounts/{self._account.account_sid}/Calls"
        url = self._v1("Calls.json")
        query: Mapping[str, str] | None = params
        seen: set[str] = set()
        results: list[CallDetails] = []
        for _ in range(max_pages):
            payload = await self._send(_Request("v1.calls.list", "get", "GET", url, params=query))
            calls, next_uri = self._parse_page(payload, tz)
            results.extend(calls)
            if not calls or not next_uri:
                break
            next_uri = next_uri.replace("&amp;", "&")
            if not next_uri.startswith(prefix) or "://" in next_uri:
                raise ExotelInvalidResponse(
                    "v1.calls.list: NextPageUri does not point at this account's Calls"
                )
            if next_uri in seen:
                break
            seen.add(next_uri)
            url, query = f"{self._account.v1_base}{next_uri}", None
        return results

    def _parse_page(self, payload: Any, tz: tzinfo) -> tuple[list[CallDetails], str | None]:
        return self._parse("v1.calls.list", lambda: bulk_page(payload, tz))

    def _date_created_filter(self, start: datetime | None, end: datetime | None) -> str | None:
        parts: list[str] = []
        for op, value in (("gte", start), ("lte", end)):
            if value is None:
                continue
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("created_from/created_to must be timezone-aware datetimes")
            local = value.astimezone(self._account.zone)
            parts.append(f"{op}:{local:%Y-%m-%d %H:%M:%S}")
        if start is not None and end is not None and start > end:
            raise ValueError("created_from must not be after created_to")
        return ";".join(parts) or None

    # ------------------------------------------------------------------ LWB legs

    async def active_legs(self, call_sid: str) -> list[ActiveLeg]:
        """``GET /v1/Accounts/{sid}/Calls/{call_sid}/activelegs.json``."""
        sid = _check_sid(call_sid, "call_sid")
        payload = await self._send(
            _Request(
                "v1.activelegs",
                "get",
                "GET",
                self._v1("Calls", sid, "activelegs.json"),
                log_fields={"call_sid": sid},
            )
        )
        tz = self._account.zone
        return self._parse("v1.activelegs", lambda: ActiveLeg.list_from(payload, tz))

    async def create_monitor_leg(
        self, request: MonitorLegRequest, *, slot: Slot | None = None
    ) -> Leg:
        """``POST .../Calls/{call_sid}/legs.json`` with the request's form."""
        sid = _check_sid(request.call_sid, "call_sid")
        payload = await self._send(
            _Request(
                "v1.legs.create",
                "voice",
                "POST",
                self._v1("Calls", sid, "legs.json"),
                data=request.form if request.encoding == "form" else None,
                json=request.form if request.encoding == "json" else None,
                log_fields={"call_sid": sid},
            ),
            slot,
        )
        tz = self._account.zone
        return self._parse("v1.legs.create", lambda: Leg.from_response(payload, tz))

    async def update_monitor_leg(
        self, request: MonitorUpgradeRequest, *, slot: Slot | None = None
    ) -> Leg:
        """Upgrade a monitor leg: ``PUT .../Calls/{call_sid}/legs/{leg_sid}.json``."""
        return await self._put_leg("v1.legs.update", request, slot)

    async def hangup_leg(self, request: HangupRequest, *, slot: Slot | None = None) -> Leg:
        """Hang one leg up: ``PUT .../Calls/{call_sid}/legs/{leg_sid}.json``."""
        return await self._put_leg("v1.legs.hangup", request, slot)

    async def _put_leg(
        self,
        endpoint: str,
        request: MonitorUpgradeRequest | HangupRequest,
        slot: Slot | None,
    ) -> Leg:
        sid = _check_sid(request.call_sid, "call_sid")
        leg = _check_sid(request.leg_sid, "leg_sid")
        as_json = isinstance(request, MonitorUpgradeRequest) and request.encoding == "json"
        payload = await self._send(
            _Request(
                endpoint,
                "voice",
                "PUT",
                self._v1("Calls", sid, "legs", f"{leg}.json"),
                data=None if as_json else request.form,
                json=request.form if as_json else None,
                log_fields={"call_sid": sid, "leg_sid": leg},
            ),
            slot,
        )
        tz = self._account.zone
        return self._parse(endpoint, lambda: Leg.from_response(payload, tz))

    async def completed_call_legs(self, call_sid: str) -> list[CompletedCallLeg]:
        """Every participant of a completed call (v1 Legs API, its own 200/min limit)."""
        sid = _check_sid(call_sid, "call_sid")
        payload = await self._send(
            _Request(
                "v1.calls.legs",
                "legs",
                "GET",
                self._v1("Calls", sid, "Legs.json"),
                log_fields={"call_sid": sid},
            )
        )
        tz = self._account.zone
        return self._parse("v1.calls.legs", lambda: CompletedCallLeg.list_from(payload, tz))

    async def call_legs_v3(self, call_sid: str) -> V3CallLegs:
        """``GET {ccm_base}/v3/accounts/{sid}/calls/{call_sid}/legs``."""
        sid = _check_sid(call_sid, "call_sid")
        payload = await self._send(
            _Request(
                "v3.calls.legs",
                "get",
                "GET",
                self._ccm("v3", "calls", sid, "legs"),
                log_fields={"call_sid": sid},
            )
        )
        tz = self._account.zone
        return self._parse("v3.calls.legs", lambda: V3CallLegs.from_response(payload, tz))

    # ------------------------------------------------------------------ plumbing

    async def _send(self, req: _Request, slot: Slot | None = None) -> Any:
        """Send one request (after its rate-limiter slot, waited for here unless given);
        return the decoded body of a real success or raise."""
        account = self._account.name
        if slot is None:
            slot = await self.wait_for_slot(req.family)
        slot.spend(req.family)
        started = time.perf_counter()
        try:
            response = await self._http.request(
                req.method,
                req.url,
                params=req.params,
                data=dict(req.data) if req.data is not None else None,
                json=dict(req.json) if req.json is not None else None,
                auth=self._auth,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as e:
            elapsed = time.perf_counter() - started
            self._observe(req, None, elapsed)
            err = from_transport_error(e, endpoint=req.endpoint, redact=self._secrets)
            self._log_failure(req, None, elapsed, err)
            raise err from e

        elapsed = time.perf_counter() - started
        status = response.status_code
        self._observe(req, status, elapsed)
        body = response.content

        error: ExotelError
        if response.is_success:
            try:
                payload = load_payload(body)
            except PayloadError as e:
                error = ExotelInvalidResponse(f"{req.endpoint}: {e}", http_status=status)
                self._log_failure(req, status, elapsed, error)
                raise error from e
            if not is_failure_payload(payload):
                logger.info(
                    "exotel.request",
                    account=account,
                    endpoint=req.endpoint,
                    method=req.method,
                    status=status,
                    elapsed_ms=round(elapsed * 1000, 1),
                    **req.log_fields,
                )
                return payload
        error = parse_error_response(status, response.headers, body, redact=self._secrets)
        if isinstance(error, ExotelRateLimited) and self._throttle is not None:
            self._throttle.penalise(account, req.family, error.retry_after)
        self._log_failure(req, status, elapsed, error)
        raise error

    def _parse(self, endpoint: str, build: Callable[[], T]) -> T:
        try:
            return build()
        except (PayloadError, ValidationError) as e:
            raise ExotelInvalidResponse(f"{endpoint}: {_short(e)}") from e

    def _observe(self, req: _Request, status: int | None, seconds: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer.observe(
                account=self._account.name,
                endpoint=req.endpoint,
                method=req.method,
                status=status,
                seconds=seconds,
            )
        except Exception:  # metrics must never change a request's outcome
            logger.warning("exotel.observer.failed", endpoint=req.endpoint, exc_info=True)

    def _log_failure(
        self, req: _Request, status: int | None, elapsed: float, error: ExotelError
    ) -> None:
        logger.warning(
            "exotel.request.failed",
            account=self._account.name,
            endpoint=req.endpoint,
            method=req.method,
            status=status,
            elapsed_ms=round(elapsed * 1000, 1),
            error=error.code,
            exotel_code=error.exotel_code,
            retryable=error.retryable,
            maybe_sent=error.maybe_sent,
            **req.log_fields,
        )
        logger.debug("exotel.request.error_detail", endpoint=req.endpoint, message=str(error))


def _check_sid(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SID.match(value):
        raise ExotelRejected(f"invalid {what}: expected 1-128 letters, digits, '-' or '_'")
    return value


def _check_ccm(api: str) -> None:
    if api not in ("v2", "v3"):
        raise ValueError(f"CCM API must be 'v2' or 'v3', not {api!r}")


def _short(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in e.errors(include_input=False, include_url=False)
        )
    return str(e)
