"""The ledger makes effects exactly-once: intents before effects, outcomes remembered,
in-doubt commands reconciled against Exotel instead of being sent again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.commands import CallConnect, LegHangup
from contracts.results import CommandResult
from services.executor.ledger import CommandLedger, LedgerEntry
from services.executor.mapping import CallbackTarget
from services.executor.retry import RetryPolicy
from services.executor.service import Account, CommandService
from services.exotel.errors import ExotelNotFound, ExotelTimeout
from services.exotel.hooks import before_send


@dataclass
class Placed:
    call_sid: str


@dataclass
class FakeLog:
    entries: list[LedgerEntry] = field(default_factory=list)

    async def append(self, entry: LedgerEntry) -> None:
        self.entries.append(entry)


@dataclass
class FakeExotel:
    """Exotel as the executor sees it: counts effects, lists finished calls."""

    finished_calls: list[Placed] = field(default_factory=list)
    connects: int = 0
    hangups: int = 0
    bulk_queries: list[dict[str, Any]] = field(default_factory=list)
    hangup_error: Exception | None = None

    async def _sending(self) -> None:
        """What the real client does after the rate limiter and before the request."""
        hook = before_send.get()
        if hook is not None:
            await hook()

    async def connect_call_v1(self, form: Mapping[str, str]) -> Placed:
        await self._sending()
        self.connects += 1
        return Placed(f"sid-{self.connects}")

    async def create_call_ccm(self, api: Any, body: Mapping[str, Any]) -> Placed:
        await self._sending()
        self.connects += 1
        return Placed(f"sid-{self.connects}")

    async def bulk_call_details(self, **filters: Any) -> Sequence[Placed]:
        self.bulk_queries.append(filters)
        return list(self.finished_calls)

    async def hangup_leg(self, call_sid: str, leg_sid: str) -> Any:
        await self._sending()
        self.hangups += 1
        if self.hangup_error:
            raise self.hangup_error
        return Placed(leg_sid)

    async def active_legs(self, call_sid: str) -> Sequence[Any]:
        return []


def service(exotel: FakeExotel, ledger: CommandLedger, window: float = 0.0) -> CommandService:
    return CommandService(
        accounts={"default": Account("default", "v1", exotel)},  # type: ignore[arg-type]
        callbacks=CallbackTarget("http://ingress.test", "token-0123456789abcdef"),
        retry_policy=RetryPolicy(max_attempts=2, initial_seconds=0.01, max_backoff_seconds=0.02),
        journal=ledger,
        reconcile_window_seconds=window,
        reconcile_poll_seconds=0.01,
    )


CONNECT = CallConnect.model_validate(
    {"command_id": "c-1", "from": "+919876543210", "to": "+919812345678", "caller_id": "0804711"}
)


def intent(
    evidence: dict[str, str] | None = None,
    command_type: str = "call.connect",
    age: timedelta = timedelta(seconds=5),
) -> LedgerEntry:
    return LedgerEntry(
        command_id="c-1",
        command_type=command_type,  # type: ignore[arg-type]
        state="intent",
        account="default",
        at=datetime.now(UTC) - age,
        evidence=evidence or {"from": "+919876543210", "to": "+919812345678", "api": "v1"},
    )


async def test_no_intent_is_recorded_when_nothing_is_sent() -> None:
    log = FakeLog()
    invalid = CallConnect.model_validate(
        {**CONNECT.model_dump(by_alias=True), "streaming": {"url": "wss://x"}}
    )
    result = await service(FakeExotel(), CommandLedger(log)).execute(
        invalid, command_type="call.connect"
    )
    assert result.outcome == "rejected"
    assert log.entries == []


async def test_an_intent_is_recorded_before_the_call_is_placed() -> None:
    log, exotel = FakeLog(), FakeExotel()
    ledger = CommandLedger(log)
    result = await service(exotel, ledger).execute(CONNECT, command_type="call.connect")
    assert result.outcome == "accepted"
    assert [e.state for e in log.entries] == ["intent"]
    assert log.entries[0].evidence == {"from": "+919876543210", "to": "+919812345678", "api": "v1"}
    await ledger.complete(result)
    done = ledger.lookup("call.connect", "c-1")
    assert done is not None
    assert done.state == "done"
    assert done.result == result


async def test_an_in_doubt_connect_finds_the_call_instead_of_placing_it_again() -> None:
    exotel = FakeExotel(finished_calls=[Placed("already-placed")])
    result = await service(exotel, CommandLedger(FakeLog())).execute(
        CONNECT, command_type="call.connect", in_doubt=intent()
    )
    assert result.outcome == "accepted"
    assert result.call_sid == "already-placed"
    assert exotel.connects == 0
    assert exotel.bulk_queries[0]["from_numbers"] == ["+919876543210"]
    assert exotel.bulk_queries[0]["to_numbers"] == ["+919812345678"]


async def test_an_in_doubt_connect_with_no_call_found_fails_without_ringing_anyone() -> None:
    exotel = FakeExotel()
    result = await service(exotel, CommandLedger(FakeLog()), window=0.1).execute(
        CONNECT, command_type="call.connect", in_doubt=intent(age=timedelta(0))
    )
    assert result.outcome == "failed"
    assert result.error is not None
    assert result.error.code == "in_doubt"
    assert result.error.retryable is False
    assert exotel.connects == 0
    assert len(exotel.bulk_queries) >= 2, "bulk details list finished calls only: look again"


async def test_an_in_doubt_hangup_whose_leg_is_gone_counts_as_done() -> None:
    exotel = FakeExotel(
        hangup_error=ExotelNotFound("Not Found", http_status=404, exotel_code="404")
    )
    hangup = LegHangup.model_validate(
        {"command_id": "c-1", "call_sid": "call-1", "leg_sid": "leg-9"}
    )
    result = await service(exotel, CommandLedger(FakeLog())).execute(
        hangup, command_type="leg.hangup", in_doubt=intent({"call_sid": "call-1"}, "leg.hangup")
    )
    assert result.outcome == "accepted"
    assert result.leg_sid == "leg-9"


def test_an_outcome_is_never_undone_by_an_older_intent_read_later() -> None:
    ledger = CommandLedger()
    now = datetime.now(UTC)
    done = LedgerEntry(
        command_id="c-1",
        command_type="call.connect",
        state="done",
        account="default",
        at=now,
        result=CommandResult(
            command_id="c-1",
            command_type="call.connect",
            outcome="accepted",
            account="default",
            attempts=1,
            completed_at=now,
        ),
    )
    ledger.apply(done)
    ledger.apply(intent())
    entry = ledger.lookup("call.connect", "c-1")
    assert entry is not None
    assert entry.state == "done"


def test_idempotency_keys_are_scoped_by_command_type() -> None:
    ledger = CommandLedger()
    ledger.apply(intent())
    assert ledger.lookup("call.connect", "c-1") is not None
    assert ledger.lookup("leg.hangup", "c-1") is None


async def test_a_lost_answer_is_reconciled_not_resent() -> None:
    """ReadTimeout after the request went out: the call may be ringing, so the executor
    looks for it in Exotel's call details instead of placing it again."""

    class AnswerLost(FakeExotel):
        async def connect_call_v1(self, form: Mapping[str, str]) -> Placed:
            await super().connect_call_v1(form)
            self.finished_calls.append(Placed("placed-despite-timeout"))
            raise ExotelTimeout("read timeout", maybe_sent=True)

    exotel = AnswerLost()
    result = await service(exotel, CommandLedger(FakeLog()), window=1.0).execute(
        CONNECT, command_type="call.connect"
    )
    assert result.outcome == "accepted"
    assert result.call_sid == "placed-despite-timeout"
    assert exotel.connects == 1
    assert result.attempts == 2, "one connect, one bulk call-details lookup"


async def test_a_timeout_before_sending_is_retried() -> None:
    class ConnectFailsOnce(FakeExotel):
        failed = False

        async def connect_call_v1(self, form: Mapping[str, str]) -> Placed:
            if not self.failed:
                self.failed = True
                raise ExotelTimeout("connect timeout", maybe_sent=False)
            return await super().connect_call_v1(form)

    exotel = ConnectFailsOnce()
    result = await service(exotel, CommandLedger(FakeLog())).execute(
        CONNECT, command_type="call.connect"
    )
    assert result.outcome == "accepted"
    assert result.attempts == 2
    assert exotel.bulk_queries == []
