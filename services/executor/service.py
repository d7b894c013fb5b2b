"""The executor's service layer: one command in, exactly one ``CommandResult`` out.

No Kafka and no HTTP here: Exotel is reached through the ``ExotelGateway`` port (the real
``ExotelClient`` in production, the sandbox behind it in tests).

``call.connect`` places a call (v1 connect, v2/v3 CCM). ``lwb.action`` and ``leg.hangup``
follow Exotel's LWB document (lwb-legs-and-hangup.txt); which leg they act on and which
monitor-mode changes are allowed is decided in :mod:`services.executor.supervision`. Every
Exotel request goes through :func:`with_retries` on its own; a result's ``attempts`` is the
total number of HTTP attempts the command made (the active-legs read included).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Generic, Literal, Protocol, TypeVar

import structlog

from contracts.commands import ApiVersion, CallConnect, Command, CommandType, LegHangup, LwbAction
from contracts.decoding import InvalidCommand
from contracts.results import CommandError, CommandResult, ErrorCode, Outcome
from services.executor.mapping import (
    CallbackContentType,
    CallbackTarget,
    UnsupportedOption,
    build_connect_request,
)
from services.executor.retry import RetryPolicy, with_retries
from services.executor.supervision import (
    IllegalTransition,
    LegLike,
    NoTargetLeg,
    check_upgrade,
    find_leg,
    is_monitor,
    origin_of,
    pick_agent_leg,
    resolve_selector,
)
from services.exotel.errors import ExotelError, ExotelNotFound, ExotelRejected, ExotelTimeout
from services.exotel.hooks import before_send

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: The one status-callback event Exotel offers for monitor legs.
MONITOR_LEG_EVENTS = ("terminal",)


class PlacedCallLike(Protocol):
    @property
    def call_sid(self) -> str: ...


class LegAnswer(Protocol):
    """Exotel's answer to creating, upgrading or hanging up a leg."""

    @property
    def sid(self) -> str: ...


class ExotelGateway(Protocol):
    """What the executor needs from Exotel for one account."""

    async def connect_call_v1(self, form: Mapping[str, str]) -> PlacedCallLike: ...

    async def create_call_ccm(self, api: Any, body: Mapping[str, Any]) -> PlacedCallLike: ...

    async def active_legs(self, call_sid: str) -> Sequence[LegLike]: ...

    async def create_monitor_leg(self, call_sid: str, form: Mapping[str, str]) -> LegAnswer: ...

    async def update_monitor_leg(
        self,
        call_sid: str,
        leg_sid: str,
        action: Literal["whisper", "barge"],
        target_leg_sid: str | None = None,
    ) -> LegAnswer: ...

    async def hangup_leg(self, call_sid: str, leg_sid: str) -> LegAnswer: ...

    async def bulk_call_details(
        self,
        *,
        from_numbers: Sequence[str] = (),
        to_numbers: Sequence[str] = (),
        created_from: datetime | None = None,
    ) -> Sequence[PlacedCallLike]: ...


class EffectJournal(Protocol):
    """Records an intent durably before a request with an effect (the command ledger)."""

    async def intend(
        self,
        *,
        command_id: str,
        command_type: CommandType,
        account: str,
        evidence: Mapping[str, str],
    ) -> object: ...


class InDoubt(Protocol):
    """A recorded intent with no outcome: the request may have reached Exotel."""

    @property
    def at(self) -> datetime: ...

    @property
    def evidence(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Account:
    """A configured Exotel account as the executor sees it."""

    name: str
    default_api: ApiVersion
    gateway: ExotelGateway


class ExecutorObserver(Protocol):
    def retried(self, command_type: str, error: ExotelError) -> None: ...


@dataclass
class CommandService:
    accounts: Mapping[str, Account]
    callbacks: CallbackTarget
    retry_policy: RetryPolicy
    callback_content_type: CallbackContentType = "multipart/form-data"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    observer: ExecutorObserver | None = None
    journal: EffectJournal | None = None
    reconcile_window_seconds: float = 120.0
    reconcile_poll_seconds: float = 2.0

    async def execute(
        self,
        command: Command | InvalidCommand,
        *,
        command_type: CommandType,
        requested_at: datetime | None = None,
        in_doubt: InDoubt | None = None,
    ) -> CommandResult:
        """Run ``command`` against Exotel and say what happened.

        ``in_doubt``: an earlier run recorded its intent and then stopped (crash,
        rebalance); the request may have reached Exotel, so the command is reconciled
        against Exotel instead of being sent again blindly.
        """
        outcome = _Outcome(self, command_type, requested_at, in_doubt)
        if isinstance(command, InvalidCommand):
            return outcome.rejected(
                command.command_id,
                command.account,
                _error("invalid_command", command.message, field=command.field),
            )
        account = self.accounts.get(command.account)
        if account is None:
            return outcome.rejected(
                command.command_id,
                command.account,
                _error(
                    "unknown_account",
                    f"invalid field 'account': no Exotel account named {command.account!r} "
                    "is configured",
                    field="account",
                ),
            )
        if isinstance(command, CallConnect):
            if in_doubt is not None:
                return await self._reconcile_connect(command, account, outcome, in_doubt)
            return await self._connect(command, account, outcome)
        if isinstance(command, LwbAction):
            with structlog.contextvars.bound_contextvars(call_sid=command.call_sid):
                if command.monitor_leg_sid is not None:
                    return await self._upgrade(command, account, outcome)
                return await self._monitor(command, account, outcome)
        if isinstance(command, LegHangup):
            with structlog.contextvars.bound_contextvars(call_sid=command.call_sid):
                return await self._hangup(command, account, outcome)
        raise TypeError(f"unexpected command {type(command).__name__}")  # pragma: no cover

    async def _connect(
        self, command: CallConnect, account: Account, outcome: _Outcome
    ) -> CommandResult:
        api = command.api or account.default_api
        callback_url = self.callbacks.url(
            command_id=command.command_id, account=account.name, api=api
        )
        try:
            request = build_connect_request(
                command,
                api=api,
                callback_url=callback_url,
                callback_content_type=self.callback_content_type,
            )
        except UnsupportedOption as exc:
            return outcome.rejected(
                command.command_id,
                account.name,
                _error("invalid_command", f"invalid field '{exc.field}': {exc}", field=exc.field),
                api=api,
            )

        async def place() -> PlacedCallLike:
            if request.api == "v1":
                return await account.gateway.connect_call_v1(request.form)
            return await account.gateway.create_call_ccm(request.api, request.body)

        started = self.clock()
        with self._intent_before_send(
            outcome, command, account, {"from": command.from_, "to": command.to or "", "api": api}
        ):
            attempted = await with_retries(
                place,
                self.retry_policy,
                on_retry=self._retried("call.connect"),
                unless=_may_have_placed,
            )
        if attempted.value is not None:
            return outcome.accepted(
                command.command_id,
                account.name,
                call_sid=attempted.value.call_sid,
                attempts=attempted.attempts,
                api=api,
            )
        assert attempted.error is not None
        if _may_have_placed(attempted.error):
            # No answer, but the request reached Exotel: the call may be ringing. Look for
            # it instead of placing it again (as after a crash).
            log.warning("connect.answer_lost", error=attempted.error.message)
            sent = _Intent(at=started, evidence={"api": api})
            reconciled = await self._reconcile_connect(command, account, outcome, sent)
            return reconciled.model_copy(
                update={"attempts": reconciled.attempts + attempted.attempts}
            )
        return outcome.from_error(
            command.command_id, account.name, attempted.error, attempted.attempts, api=api
        )

    # ------------------------------------------------------------------ lwb.action

    async def _monitor(
        self, command: LwbAction, account: Account, outcome: _Outcome
    ) -> CommandResult:
        """Create a monitor leg (POST legs), on the agent leg unless a target is given."""
        exotel = _Exchange(self, "lwb.action")
        ids = (command.command_id, account.name)
        if outcome.in_doubt is not None:
            return await self._reconcile_monitor(command, account, outcome, exotel)
        target = command.target_leg_sid
        if target is None:
            legs = await exotel.run(lambda: account.gateway.active_legs(command.call_sid))
            if legs.error is not None:
                return outcome.from_error(
                    *ids, legs.error, exotel.attempts, call_sid=command.call_sid
                )
            assert legs.value is not None
            try:
                agent = pick_agent_leg(legs.value)
            except NoTargetLeg as exc:
                return outcome.rejected(
                    *ids,
                    _no_target(exc, command.action, "target_leg_sid"),
                    attempts=exotel.attempts,
                    call_sid=command.call_sid,
                )
            target = agent.sid
            log.info("lwb.agent_leg_picked", target_leg_sid=target, origin=origin_of(agent))
        form = self._monitor_form(command, account, target)
        with self._intent_before_send(
            outcome,
            command,
            account,
            {"call_sid": command.call_sid, "supervisor": command.supervisor, "target": target},
        ):
            created = await exotel.run(
                lambda: account.gateway.create_monitor_leg(command.call_sid, form)
            )
        if created.error is not None:
            return outcome.from_error(
                *ids, created.error, exotel.attempts, call_sid=command.call_sid
            )
        assert created.value is not None
        return outcome.accepted(
            *ids, attempts=exotel.attempts, call_sid=command.call_sid, leg_sid=created.value.sid
        )

    async def _reconcile_monitor(
        self, command: LwbAction, account: Account, outcome: _Outcome, exotel: _Exchange
    ) -> CommandResult:
        """An interrupted run may have created the monitor leg: look for the supervisor's
        leg among the active legs; never create a second one."""
        ids = (command.command_id, account.name)
        listed = await exotel.run(lambda: account.gateway.active_legs(command.call_sid))
        if listed.error is not None:
            return outcome.from_error(
                *ids, listed.error, exotel.attempts, call_sid=command.call_sid
            )
        found = _monitor_leg_of(listed.value or (), command.supervisor)
        if found is not None:
            log.info("lwb.monitor_reconciled", monitor_leg_sid=found)
            return outcome.accepted(
                *ids, attempts=exotel.attempts, call_sid=command.call_sid, leg_sid=found
            )
        return outcome.rejected(
            *ids,
            _in_doubt(
                "a monitor leg for the supervisor may have been created before a "
                "restart and none is listed among the active legs"
            ),
            attempts=exotel.attempts,
            call_sid=command.call_sid,
            outcome="failed",
        )

    def _monitor_form(self, command: LwbAction, account: Account, target: str) -> dict[str, str]:
        """The POST parameters of the LWB document's "create the monitor leg"."""
        form = {
            "action": command.action,
            "PhoneNumber": command.supervisor,
            "TargetLegSid": target,
            "StatusCallback": self.callbacks.url(
                command_id=command.command_id, account=account.name, api="lwb"
            ),
            "StatusCallbackContentType": self.callback_content_type,
        }
        for index, event in enumerate(MONITOR_LEG_EVENTS):
            form[f"StatusCallbackEvents[{index}]"] = event
        if command.custom_field is not None:
            form["CustomField"] = command.custom_field
        return form

    async def _upgrade(
        self, command: LwbAction, account: Account, outcome: _Outcome
    ) -> CommandResult:
        """Upgrade an existing monitor leg (PUT legs/{sid}); illegal moves never reach Exotel."""
        assert command.monitor_leg_sid is not None
        assert command.action != "listen"  # the contract refuses listen as an upgrade
        action: Literal["whisper", "barge"] = command.action
        leg_sid = command.monitor_leg_sid
        exotel = _Exchange(self, "lwb.action")
        ids = (command.command_id, account.name)
        fields: dict[str, Any] = {"call_sid": command.call_sid, "leg_sid": leg_sid}
        legs = await exotel.run(lambda: account.gateway.active_legs(command.call_sid))
        if legs.error is not None:
            return outcome.from_error(*ids, legs.error, exotel.attempts, **fields)
        assert legs.value is not None
        monitor = find_leg(legs.value, leg_sid)
        if (
            outcome.in_doubt is not None
            and monitor is not None
            and (monitor.last_action or "").lower() == action
        ):
            log.info("lwb.upgrade_reconciled", monitor_leg_sid=leg_sid, action=action)
            return outcome.accepted(*ids, attempts=exotel.attempts, **fields)
        if monitor is not None and not is_monitor(monitor):
            return outcome.rejected(
                *ids,
                _error(
                    "invalid_command",
                    f"invalid field 'monitor_leg_sid': leg {leg_sid} is not a monitor leg "
                    f"(origin {origin_of(monitor) or 'unknown'!r})",
                    field="monitor_leg_sid",
                ),
                attempts=exotel.attempts,
                **fields,
            )
        try:
            check = check_upgrade(monitor, action)
        except IllegalTransition as exc:
            return outcome.rejected(
                *ids,
                _error("illegal_transition", str(exc), field="action"),
                attempts=exotel.attempts,
                **fields,
            )
        if not check.known:
            log.info(
                "lwb.upgrade_mode_unknown", monitor_leg_sid=leg_sid, listed=monitor is not None
            )
        target = command.target_leg_sid
        if target is None and action == "whisper":
            try:
                target = pick_agent_leg(legs.value).sid
            except NoTargetLeg as exc:
                return outcome.rejected(
                    *ids,
                    _no_target(exc, action, "target_leg_sid"),
                    attempts=exotel.attempts,
                    **fields,
                )
        with self._intent_before_send(
            outcome, command, account, {"monitor_leg_sid": leg_sid, "action": action}
        ):
            upgraded = await exotel.run(
                lambda: account.gateway.update_monitor_leg(
                    command.call_sid, leg_sid, action, target
                )
            )
        if upgraded.value is not None:
            return outcome.accepted(*ids, attempts=exotel.attempts, **fields)
        assert upgraded.error is not None
        if upgraded.maybe_sent and isinstance(upgraded.error, ExotelRejected):
            # An earlier attempt may have upgraded the leg already: look before rejecting.
            again = await exotel.run(lambda: account.gateway.active_legs(command.call_sid))
            leg = find_leg(again.value or (), leg_sid)
            if leg is not None and (leg.last_action or "").lower() == action:
                log.info("lwb.upgrade_reconciled", monitor_leg_sid=leg_sid, action=action)
                return outcome.accepted(*ids, attempts=exotel.attempts, **fields)
        return outcome.from_error(*ids, upgraded.error, exotel.attempts, **fields)

    # ------------------------------------------------------------------ leg.hangup

    async def _hangup(
        self, command: LegHangup, account: Account, outcome: _Outcome
    ) -> CommandResult:
        """Hang up ``leg_sid``, or the legs the ``leg`` selector names (PUT action=hangup).

        Hanging up is idempotent at Exotel (a leg already gone answers 404), so an in-doubt
        hang-up is simply sent again and a 404 then means our earlier request worked."""
        exotel = _Exchange(self, "leg.hangup", assume_sent=outcome.in_doubt is not None)
        ids = (command.command_id, account.name)
        call_sid = command.call_sid
        if command.leg_sid is not None:
            targets = [command.leg_sid]
        else:
            assert command.leg is not None
            legs = await exotel.run(lambda: account.gateway.active_legs(call_sid))
            if legs.error is not None:
                return outcome.from_error(*ids, legs.error, exotel.attempts, call_sid=call_sid)
            assert legs.value is not None
            try:
                targets = [leg.sid for leg in resolve_selector(legs.value, command.leg)]
            except NoTargetLeg as exc:
                return outcome.rejected(
                    *ids,
                    _no_target(exc, f"leg={command.leg}", "leg"),
                    attempts=exotel.attempts,
                    call_sid=call_sid,
                )
        hung: list[str] = []
        gone: ExotelError | None = None
        for sid in targets:
            with self._intent_before_send(
                outcome, command, account, {"call_sid": call_sid, "legs": ",".join(targets)}
            ):
                answer = await exotel.run(partial(account.gateway.hangup_leg, call_sid, sid))
            if answer.value is not None:
                hung.append(sid)
                continue
            error = answer.error
            assert error is not None
            if isinstance(error, ExotelNotFound):
                if answer.maybe_sent:
                    # An earlier attempt may have reached Exotel: the leg is gone, as asked.
                    log.info("leg.hangup_reconciled", leg_sid=sid)
                    hung.append(sid)
                    continue
                if len(targets) > 1:
                    # Already gone (hanging up one party may end the whole call).
                    log.info("leg.hangup_already_gone", leg_sid=sid)
                    gone = gone or error
                    continue
            note = (
                f"hung up {len(hung)} of {len(targets)} legs ({', '.join(hung)}), then: "
                if hung
                else None
            )
            return outcome.from_error(
                *ids,
                error,
                exotel.attempts,
                note=note,
                call_sid=call_sid,
                leg_sid=hung[0] if hung else sid,
            )
        if not hung:
            assert gone is not None
            return outcome.from_error(
                *ids, gone, exotel.attempts, call_sid=call_sid, leg_sid=targets[0]
            )
        if len(targets) > 1:
            log.info("leg.hangup_several", hung_up=len(hung), selected=len(targets), legs=hung)
        return outcome.accepted(*ids, attempts=exotel.attempts, call_sid=call_sid, leg_sid=hung[0])

    @contextlib.contextmanager
    def _intent_before_send(
        self,
        outcome: _Outcome,
        command: Command,
        account: Account,
        evidence: Mapping[str, str],
    ) -> Iterator[None]:
        """Record the intent (once) when the first effectful request is about to go out:
        after the rate limiter granted its slot, so waiting commands are not in doubt."""
        journal = self.journal
        if journal is None:
            yield
            return
        recorded = False
        command_type = outcome.command_type

        async def record() -> None:
            nonlocal recorded
            if not recorded:
                await journal.intend(
                    command_id=command.command_id,
                    command_type=command_type,
                    account=account.name,
                    evidence=evidence,
                )
                recorded = True

        token = before_send.set(record)
        try:
            yield
        finally:
            before_send.reset(token)

    async def _reconcile_connect(
        self, command: CallConnect, account: Account, outcome: _Outcome, entry: InDoubt
    ) -> CommandResult:
        """Find the call an interrupted run may have placed (bulk call details by From/To
        since the intent); never place it again. Bulk details list only finished calls,
        so look again until the reconcile window after the intent has passed."""
        api = entry.evidence.get("api") or command.api or account.default_api
        since = entry.at - timedelta(seconds=60)
        exotel = _Exchange(self, "call.connect")
        ids = (command.command_id, account.name)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + max(
            0.0,
            self.reconcile_window_seconds - (self.clock() - entry.at).total_seconds(),
        )
        while True:
            found = await exotel.run(
                lambda: account.gateway.bulk_call_details(
                    from_numbers=[command.from_],
                    to_numbers=[command.to] if command.to else [],
                    created_from=since,
                )
            )
            if found.value:
                call_sid = found.value[0].call_sid
                log.info("connect.reconciled", call_sid=call_sid)
                return outcome.accepted(*ids, attempts=exotel.attempts, call_sid=call_sid, api=api)
            if loop.time() >= give_up:
                break
            await asyncio.sleep(self.reconcile_poll_seconds)
        reason = f"Exotel's bulk call details show no call from {command.from_} since " + (
            f"{since.isoformat()}"
            if found.error is None
            else f"{since.isoformat()} (lookup failed: {found.error.message})"
        )
        return outcome.rejected(
            *ids,
            _in_doubt(
                "the request may have reached Exotel before a restart; " + reason + "; "
                "not sent again so that nobody is rung twice"
            ),
            attempts=exotel.attempts,
            api=api,
            outcome="failed",
        )

    def _retried(self, command_type: str) -> Callable[[ExotelError, int, float], None]:
        def on_retry(error: ExotelError, attempt: int, sleep: float) -> None:
            log.warning(
                "exotel.retry",
                attempt=attempt,
                sleep_seconds=round(sleep, 3),
                http_status=error.http_status,
                exotel_code=error.exotel_code,
                error=error.message,
            )
            if self.observer:
                self.observer.retried(command_type, error)

        return on_retry


@dataclass
class _Answer(Generic[T]):
    """One Exotel request's value or final error; ``maybe_sent``: some failed attempt may
    have reached Exotel (so a final 4xx may be the effect of our own earlier attempt)."""

    value: T | None
    error: ExotelError | None
    maybe_sent: bool


@dataclass
class _Exchange:
    """The Exotel requests of one command, each retried on its own, attempts summed."""

    service: CommandService
    command_type: str
    attempts: int = 0
    assume_sent: bool = False

    async def run(self, call: Callable[[], Awaitable[T]]) -> _Answer[T]:
        maybe_sent = self.assume_sent

        async def attempt() -> T:
            nonlocal maybe_sent
            try:
                return await call()
            except ExotelError as error:
                maybe_sent = maybe_sent or error.maybe_sent
                raise

        attempted = await with_retries(
            attempt,
            self.service.retry_policy,
            on_retry=self.service._retried(self.command_type),
        )
        self.attempts += attempted.attempts
        return _Answer(attempted.value, attempted.error, maybe_sent)


def _may_have_placed(error: ExotelError) -> bool:
    """A timeout after the request was sent: Exotel may have placed the call."""
    return isinstance(error, ExotelTimeout) and error.maybe_sent


@dataclass(frozen=True)
class _Intent:
    """An in-doubt request of this very run (its answer was lost)."""

    at: datetime
    evidence: dict[str, str]


def _in_doubt(message: str) -> CommandError:
    return _error("in_doubt", message)


def _monitor_leg_of(legs: Sequence[LegLike], supervisor: str) -> str | None:
    """The sid of a monitor leg ringing ``supervisor``, if one is listed."""
    for leg in legs:
        if is_monitor(leg) and _digits(getattr(leg, "phone_number", None)) == _digits(supervisor):
            return leg.sid
    return None


def _digits(number: str | None) -> str:
    digits = "".join(ch for ch in number or "" if ch.isdigit())
    return digits[-10:]


def _no_target(exc: NoTargetLeg, what: str, field_name: str) -> CommandError:
    return _error(
        "no_target_leg",
        f"{what}: no target leg ({exc.reason}): {exc.message}",
        field=field_name,
    )


def _error(
    code: ErrorCode,
    message: str,
    *,
    field: str | None = None,
    http_status: int | None = None,
    exotel_code: str | None = None,
    retryable: bool = False,
) -> CommandError:
    return CommandError(
        code=code,
        message=message,
        field=field,
        http_status=http_status,
        exotel_code=exotel_code,
        retryable=retryable,
    )


def error_from_exotel(error: ExotelError) -> CommandError:
    """A result's ``error`` from Exotel's own answer."""
    return _error(
        error.code,
        error.message,
        http_status=error.http_status,
        exotel_code=error.exotel_code,
        retryable=error.retryable,
    )


@dataclass(frozen=True)
class _Outcome:
    """Builds the one result of a command."""

    service: CommandService
    command_type: CommandType
    requested_at: datetime | None
    in_doubt: InDoubt | None = None

    def _result(self, command_id: str, account: str, **fields: Any) -> CommandResult:
        return CommandResult(
            command_id=command_id,
            command_type=self.command_type,
            account=account,
            requested_at=self.requested_at,
            completed_at=self.service.clock(),
            **fields,
        )

    def accepted(
        self, command_id: str, account: str, *, attempts: int, **fields: Any
    ) -> CommandResult:
        return self._result(command_id, account, outcome="accepted", attempts=attempts, **fields)

    def rejected(
        self,
        command_id: str,
        account: str,
        error: CommandError,
        *,
        attempts: int = 0,
        outcome: Outcome = "rejected",
        **fields: Any,
    ) -> CommandResult:
        return self._result(
            command_id, account, outcome=outcome, attempts=attempts, error=error, **fields
        )

    def from_error(
        self,
        command_id: str,
        account: str,
        error: ExotelError,
        attempts: int,
        *,
        note: str | None = None,
        **fields: Any,
    ) -> CommandResult:
        outcome = "failed" if error.retryable else "rejected"
        described = error_from_exotel(error)
        if note:
            described = described.model_copy(update={"message": note + described.message})
        return self._result(
            command_id,
            account,
            outcome=outcome,
            attempts=attempts,
            error=described,
            **fields,
        )
