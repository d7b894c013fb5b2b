"""``leg.hangup``: hang up ``leg_sid``, or the legs the ``leg`` selector names
(``PUT legs/{sid}`` ``action=hangup``, one leg after another).

Hanging up is idempotent at Exotel (a leg already gone answers 404): an in-doubt hang-up
is simply sent again, and a 404 then means our earlier request worked.
"""

from __future__ import annotations

import structlog

from contracts.commands import LegHangup
from contracts.results import CommandResult
from services.executor.commands import outcomes
from services.executor.commands.exchange import Failed
from services.executor.commands.run import CommandRun
from services.executor.mapping import legs as mapping
from services.executor.ports import LegAnswer
from services.executor.supervision import NoTargetLeg, resolve_selector
from services.exotel.errors import ExotelError, ExotelNotFound
from services.exotel.requests import HangupRequest

log = structlog.get_logger(__name__)


async def handle(command: LegHangup, run: CommandRun) -> CommandResult:
    call_sid = command.call_sid
    with structlog.contextvars.bound_contextvars(call_sid=call_sid):
        targets: list[str] = []
        if command.leg_sid is not None:
            targets = [command.leg_sid]
        elif command.leg is not None:
            legs = await run.exotel.read(lambda: run.gateway.active_legs(call_sid))
            if isinstance(legs, Failed):
                return run.result.exotel_refused(legs.error, call_sid=call_sid)
            try:
                targets = [leg.sid for leg in resolve_selector(legs, command.leg)]
            except NoTargetLeg as exc:
                return run.result.rejected(
                    outcomes.no_target(exc, f"leg={command.leg}", "leg"), call_sid=call_sid
                )

        hung: list[str] = []
        gone: ExotelError | None = None
        for sid in targets:
            answer = await _hang_up(run, mapping.hangup(call_sid, sid), targets)
            if not isinstance(answer, Failed):
                hung.append(sid)
                continue
            if isinstance(answer.error, ExotelNotFound):
                if answer.maybe_sent:
                    # An earlier attempt may have reached Exotel: the leg is gone, as asked.
                    log.info("leg.hangup_reconciled", leg_sid=sid)
                    hung.append(sid)
                    continue
                if len(targets) > 1:
                    # Already gone (hanging up one party may end the whole call).
                    log.info("leg.hangup_already_gone", leg_sid=sid)
                    gone = gone or answer.error
                    continue
            note = (
                f"hung up {len(hung)} of {len(targets)} legs ({', '.join(hung)}), then: "
                if hung
                else None
            )
            return run.result.exotel_refused(
                answer.error, note=note, call_sid=call_sid, leg_sid=hung[0] if hung else sid
            )

        if hung:
            if len(targets) > 1:
                log.info("leg.hangup_several", hung_up=len(hung), selected=len(targets), legs=hung)
            return run.result.accepted(call_sid=call_sid, leg_sid=hung[0])
        if gone is not None:
            return run.result.exotel_refused(gone, call_sid=call_sid, leg_sid=targets[0])
        return run.result.rejected(
            outcomes.no_target(NoTargetLeg("none", "nothing to hang up"), "leg.hangup", "leg"),
            call_sid=call_sid,
        )


async def _hang_up(
    run: CommandRun, request: HangupRequest, targets: list[str]
) -> LegAnswer | Failed:
    """One leg's hang-up: slot, intent (naming every selected leg), PUT."""
    return await run.exotel.effect(
        lambda slot: run.gateway.hangup_leg(request, slot=slot),
        evidence={"call_sid": request.call_sid, "legs": ",".join(targets)},
        sent_before=run.in_doubt is not None,
    )
