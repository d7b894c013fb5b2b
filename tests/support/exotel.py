"""One fake Exotel for the broker-free tests: the executor's ``ExotelGateway`` port (and the
call watch's ``call_details``) in memory, scripted per operation.

    exotel = FakeExotel()
    exotel.answer("active_legs", [leg("a", "outbound"), leg("c", "outbound-dial")])
    exotel.answer("hangup_leg", not_found(), sid="c")      # per leg (or call) sid
    result = await executor(exotel).execute(command, command_type="leg.hangup")
    assert exotel.operations() == ["active_legs", "hangup_leg", "hangup_leg"]

An operation's answers are used in order and the last one repeats; an exception is
raised. ``events`` keeps the order of what happened ("slot", "intent", then the
operation), with :class:`FakeJournal` writing its "intent" there too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.commands import ApiVersion, CommandType
from contracts.details import CallDetails as CallDetailsFact
from services.executor.ledger import LedgerEntry
from services.executor.mapping import CallbackTarget
from services.executor.numbers import NumberCache
from services.executor.ports import EffectJournal
from services.executor.retry import RetryPolicy
from services.executor.service import Account, CommandService
from services.exotel.accounts import ApiFamily, LwbEncoding
from services.exotel.client import BulkFilter, Slot
from services.exotel.errors import (
    ExotelAuthError,
    ExotelNotFound,
    ExotelRateLimited,
    ExotelRejected,
    ExotelTimeout,
    ExotelUnavailable,
)
from services.exotel.models import BulkPage, NumberMetadata
from services.exotel.requests import (
    ConnectRequest,
    HangupRequest,
    MonitorLegRequest,
    MonitorUpgradeRequest,
)

CALLBACKS = CallbackTarget("https://voicebus.example", "secret-token-0123456789")
FAST_RETRIES = RetryPolicy(max_attempts=3, initial_seconds=0.001, max_backoff_seconds=0.01)


@dataclass(frozen=True)
class Placed:
    """Exotel's answer to placing a call (and a call in bulk call details)."""

    call_sid: str


@dataclass(frozen=True)
class FakeLeg:
    """A leg as ``activelegs`` lists it, or as a leg request answers it."""

    sid: str
    origin: str | None = None
    last_action: str | None = None
    status: str | None = "in-progress"
    phone_number: str | None = None


def metadata(dnd: str = "No", *, phone_number: str = "09876543210") -> NumberMetadata:
    """Exotel's Number metadata of a Gujarat mobile number (as in Exotel's sample)."""
    return NumberMetadata(
        phone_number=phone_number,
        circle="GJ",
        circle_name="Gujarat Telecom Circle (includes Daman & Diu, Dadra & Nagar Haveli)",
        number_type="Mobile",
        operator="R",
        operator_name="Reliance",
        dnd=dnd,
        raw={},
    )


def leg(
    sid: str, origin: str, last_action: str = "", *, phone_number: str | None = None
) -> FakeLeg:
    return FakeLeg(sid, origin, last_action or None, phone_number=phone_number)


# ------------------------------------------------------------------ Exotel's refusals


def busy_agent() -> ExotelRejected:
    return ExotelRejected("User device is currently busy", http_status=409, exotel_code="10706")


def server_error(status: int = 503) -> ExotelUnavailable:
    return ExotelUnavailable("Service Unavailable", http_status=status, maybe_sent=True)


def answer_lost() -> ExotelTimeout:
    return ExotelTimeout("v1.connect: ReadTimeout", maybe_sent=True)


def not_connected() -> ExotelTimeout:
    return ExotelTimeout("v1.connect: ConnectError", maybe_sent=False)


def not_found(message: str = "Given callSid is not in progress") -> ExotelNotFound:
    return ExotelNotFound(message, http_status=404, exotel_code="404")


def rejected(message: str = "Invalid action transition") -> ExotelRejected:
    return ExotelRejected(message, http_status=400, exotel_code="400")


def rate_limited(retry_after: float | None = None) -> ExotelRateLimited:
    return ExotelRateLimited("Too Many Requests", http_status=429, retry_after=retry_after)


def unauthorised() -> ExotelAuthError:
    return ExotelAuthError("Authentication failed", http_status=401, exotel_code="401")


# ------------------------------------------------------------------ the fake


@dataclass
class FakeExotel:
    """Exotel for one account, as the executor's handlers see it."""

    events: list[str] = field(default_factory=list)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    _scripts: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    _placed: int = 0

    def answer(self, operation: str, *answers: Any, sid: str = "") -> FakeExotel:
        """Queue ``answers`` for ``operation`` (for one leg or call ``sid`` if given)."""
        self._scripts.setdefault((operation, sid), []).extend(answers)
        return self

    def operations(self) -> list[str]:
        """The operations asked for, in order (the requests, not the slots or intents)."""
        return [operation for operation, _ in self.requests]

    def sent(self, operation: str) -> list[Any]:
        """The requests (or arguments) of ``operation``, in order."""
        return [request for name, request in self.requests if name == operation]

    def _respond(self, operation: str, request: Any, sid: str, default: Any) -> Any:
        self.events.append(operation)
        self.requests.append((operation, request))
        queue = self._scripts.get((operation, sid)) or self._scripts.get((operation, ""))
        answer = default if not queue else queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    # -- the ExotelGateway port

    async def wait_for_slot(self, family: ApiFamily) -> Slot:
        self.events.append("slot")
        return Slot(family)

    async def place_call(self, request: ConnectRequest, *, slot: Slot | None = None) -> Placed:
        self._spend(slot)
        self._placed += 1
        return self._respond("place_call", request, "", Placed(f"call-{self._placed}"))

    async def active_legs(self, call_sid: str) -> Sequence[FakeLeg]:
        return self._respond("active_legs", call_sid, call_sid, [])

    async def create_monitor_leg(
        self, request: MonitorLegRequest, *, slot: Slot | None = None
    ) -> FakeLeg:
        self._spend(slot)
        default = FakeLeg("mon-1", "monitor", request.form.get("action"))
        return self._respond("create_monitor_leg", request, request.call_sid, default)

    async def update_monitor_leg(
        self, request: MonitorUpgradeRequest, *, slot: Slot | None = None
    ) -> FakeLeg:
        self._spend(slot)
        default = FakeLeg(request.leg_sid, "monitor", request.form.get("action"))
        return self._respond("update_monitor_leg", request, request.leg_sid, default)

    async def hangup_leg(self, request: HangupRequest, *, slot: Slot | None = None) -> FakeLeg:
        self._spend(slot)
        default = FakeLeg(request.leg_sid, last_action="hangup")
        return self._respond("hangup_leg", request, request.leg_sid, default)

    async def number_metadata(self, number: str) -> NumberMetadata:
        return self._respond("number_metadata", number, number, metadata())

    async def bulk_call_details(
        self,
        *,
        from_numbers: Sequence[str] = (),
        to_numbers: Sequence[str] = (),
        created_from: datetime | None = None,
    ) -> Sequence[Placed]:
        filters = {
            "from_numbers": list(from_numbers),
            "to_numbers": list(to_numbers),
            "created_from": created_from,
        }
        return self._respond("bulk_call_details", filters, "", [])

    async def bulk_page(
        self,
        filters: BulkFilter | None = None,
        *,
        page_uri: str | None = None,
        page_size: int = 100,
        oldest_first: bool = True,
    ) -> BulkPage:
        request = {
            "filters": filters,
            "page_uri": page_uri,
            "page_size": page_size,
            "oldest_first": oldest_first,
        }
        return self._respond("bulk_page", request, page_uri or "", BulkPage(calls=[]))

    # -- call details (call.lookup, the call watch)

    async def call_details(self, call_sid: str, api: ApiVersion | None = None) -> Any:
        return self._respond("call_details", (call_sid, api), call_sid, None)

    async def completed_call_legs(self, call_sid: str) -> Any:
        return self._respond("completed_call_legs", call_sid, call_sid, [])

    async def call_legs_v3(self, call_sid: str) -> Any:
        return self._respond("call_legs_v3", call_sid, call_sid, None)

    def _spend(self, slot: Slot | None) -> None:
        """A request with an effect comes with the slot it waited for, as the client wants."""
        if slot is None:
            raise AssertionError("a request with an effect was sent without its slot")
        slot.spend("voice")


@dataclass
class FakeFacts:
    """The ``call.details`` facts a command published, in order (``fail`` raises instead)."""

    published: list[CallDetailsFact] = field(default_factory=list)
    fail: BaseException | None = None

    async def publish(self, fact: CallDetailsFact) -> None:
        if self.fail is not None:
            raise self.fail
        self.published.append(fact)


@dataclass
class FakeJournal:
    """The command ledger's ``intend``, writing "intent" into the fake's events."""

    events: list[str]
    intents: list[dict[str, Any]] = field(default_factory=list)

    async def intend(
        self,
        *,
        command_id: str,
        command_type: CommandType,
        account: str,
        evidence: Mapping[str, str],
    ) -> None:
        self.events.append("intent")
        self.intents.append(
            {
                "command_id": command_id,
                "command_type": command_type,
                "account": account,
                "evidence": dict(evidence),
            }
        )


@dataclass
class FakeStatuses:
    """``call.status`` as the reconcile sees it: ``reported`` maps a command id to the call
    sid its status events carry, visible after ``after_polls`` looks."""

    reported: dict[str, str] = field(default_factory=dict)
    after_polls: int = 0
    searches: list[tuple[str, datetime]] = field(default_factory=list)
    closed: int = 0

    def search(self, command_id: str, since: datetime) -> FakeStatusSearch:
        self.searches.append((command_id, since))
        return FakeStatusSearch(self, command_id)


@dataclass
class FakeStatusSearch:
    statuses: FakeStatuses
    command_id: str
    polls: int = 0

    async def call_sid(self) -> str | None:
        self.polls += 1
        if self.polls <= self.statuses.after_polls:
            return None
        return self.statuses.reported.get(self.command_id)

    async def close(self) -> None:
        self.statuses.closed += 1


def executor(
    exotel: FakeExotel,
    *,
    journal: EffectJournal | None = None,
    statuses: FakeStatuses | None = None,
    default_api: ApiVersion = "v1",
    retries: RetryPolicy = FAST_RETRIES,
    reconcile_window: float = 0.0,
    numbers: NumberCache | None = None,
    lwb_encoding: LwbEncoding = "form",
) -> CommandService:
    """The executor's service layer for one ``default`` account played by ``exotel``."""
    return CommandService(
        accounts={"default": Account("default", default_api, exotel, lwb_encoding=lwb_encoding)},
        numbers=numbers if numbers is not None else NumberCache(),
        callbacks=CALLBACKS,
        retry_policy=retries,
        journal=journal if journal is not None else FakeJournal(exotel.events),
        reconcile_window_seconds=reconcile_window,
        reconcile_poll_seconds=0.01,
        statuses=statuses,
    )


def intent_entry(
    command_type: CommandType,
    evidence: dict[str, str],
    *,
    at: datetime,
    command_id: str = "c-1",
) -> LedgerEntry:
    """A ledger's intent with no outcome: what an interrupted run leaves behind."""
    return LedgerEntry(
        command_id=command_id,
        command_type=command_type,
        state="intent",
        account="default",
        at=at,
        evidence=evidence,
    )
