"""``lwb.action``: listen, whisper or barge into a live call (Exotel's LWB legs API).

    monitor_leg_sid given (whisper / barge) ──► upgrade that monitor leg (PUT legs/{sid})
    otherwise ──► create a monitor leg (POST legs) on target_leg_sid, else the agent leg

Which leg is the agent and which mode changes are allowed is decided in
:mod:`services.executor.supervision`; illegal moves never reach Exotel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import structlog

from contracts.commands import LwbAction
from contracts.results import CommandResult
from services.executor.commands import outcomes
from services.executor.commands.exchange import Failed
from services.executor.commands.run import CommandRun
from services.executor.mapping import legs as mapping
from services.executor.supervision import (
    IllegalTransition,
    LegLike,
    NoTargetLeg,
    check_upgrade,
    find_leg,
    is_monitor,
    origin_of,
    pick_agent_leg,
)
from services.exotel.errors import ExotelRejected

log = structlog.get_logger(__name__)


async def handle(command: LwbAction, run: CommandRun) -> CommandResult:
    with structlog.contextvars.bound_contextvars(call_sid=command.call_sid):
        if command.monitor_leg_sid is not None and command.action != "listen":
            return await upgrade(command, command.monitor_leg_sid, command.action, run)
        if run.in_doubt is not None:
            return await reconcile_monitor(command, run)
        return await monitor(command, run)


async def monitor(command: LwbAction, run: CommandRun) -> CommandResult:
    """Create a monitor leg (POST legs), on the agent leg unless a target is given."""
    call_sid = command.call_sid
    target = command.target_leg_sid
    if target is None:
        legs = await run.exotel.read(lambda: run.gateway.active_legs(call_sid))
        if isinstance(legs, Failed):
            return run.result.exotel_refused(legs.error, call_sid=call_sid)
        try:
            agent = pick_agent_leg(legs)
        except NoTargetLeg as exc:
            return run.result.rejected(
                outcomes.no_target(exc, command.action, "target_leg_sid"), call_sid=call_sid
            )
        target = agent.sid
        log.info("lwb.agent_leg_picked", target_leg_sid=target, origin=origin_of(agent))
    request = mapping.monitor_leg(
        command,
        target_leg_sid=target,
        callback_url=run.callback_url("lwb"),
        callback_content_type=run.callback_content_type,
        encoding=run.account.lwb_encoding,
    )
    created = await run.exotel.effect(
        lambda slot: run.gateway.create_monitor_leg(request, slot=slot),
        evidence={"call_sid": call_sid, "supervisor": command.supervisor, "target": target},
    )
    if isinstance(created, Failed):
        return run.result.exotel_refused(created.error, call_sid=call_sid)
    return run.result.accepted(call_sid=call_sid, leg_sid=created.sid)


async def reconcile_monitor(command: LwbAction, run: CommandRun) -> CommandResult:
    """An interrupted run may have created the monitor leg: look for the supervisor's leg
    among the active legs; never create a second one."""
    call_sid = command.call_sid
    listed = await run.exotel.read(lambda: run.gateway.active_legs(call_sid))
    if isinstance(listed, Failed):
        return run.result.exotel_refused(listed.error, call_sid=call_sid)
    found = _monitor_leg_of(listed, command.supervisor)
    if found is not None:
        log.info("lwb.monitor_reconciled", monitor_leg_sid=found)
        return run.result.accepted(call_sid=call_sid, leg_sid=found)
    return run.result.failed(
        outcomes.in_doubt(
            "a monitor leg for the supervisor may have been created before a "
            "restart and none is listed among the active legs"
        ),
        call_sid=call_sid,
    )


async def upgrade(
    command: LwbAction,
    leg_sid: str,
    action: Literal["whisper", "barge"],
    run: CommandRun,
) -> CommandResult:
    """Upgrade an existing monitor leg (PUT legs/{sid}); illegal moves never reach Exotel."""
    call_sid = command.call_sid
    legs = await run.exotel.read(lambda: run.gateway.active_legs(call_sid))
    if isinstance(legs, Failed):
        return run.result.exotel_refused(legs.error, call_sid=call_sid, leg_sid=leg_sid)
    monitor = find_leg(legs, leg_sid)
    if run.in_doubt is not None and _in_mode(monitor, action):
        log.info("lwb.upgrade_reconciled", monitor_leg_sid=leg_sid, action=action)
        return run.result.accepted(call_sid=call_sid, leg_sid=leg_sid)
    if monitor is not None and not is_monitor(monitor):
        return run.result.rejected(
            outcomes.not_a_monitor_leg(leg_sid, origin_of(monitor)),
            call_sid=call_sid,
            leg_sid=leg_sid,
        )
    try:
        check = check_upgrade(monitor, action)
    except IllegalTransition as exc:
        return run.result.rejected(
            outcomes.illegal_transition(exc), call_sid=call_sid, leg_sid=leg_sid
        )
    if not check.known:
        log.info("lwb.upgrade_mode_unknown", monitor_leg_sid=leg_sid, listed=monitor is not None)
    target = command.target_leg_sid
    if target is None and action == "whisper":
        try:
            target = pick_agent_leg(legs).sid
        except NoTargetLeg as exc:
            return run.result.rejected(
                outcomes.no_target(exc, action, "target_leg_sid"),
                call_sid=call_sid,
                leg_sid=leg_sid,
            )

    request = mapping.monitor_upgrade(
        call_sid, leg_sid, action, target_leg_sid=target, encoding=run.account.lwb_encoding
    )
    upgraded = await run.exotel.effect(
        lambda slot: run.gateway.update_monitor_leg(request, slot=slot),
        evidence={"monitor_leg_sid": leg_sid, "action": action},
    )
    if not isinstance(upgraded, Failed):
        return run.result.accepted(call_sid=call_sid, leg_sid=leg_sid)
    if upgraded.maybe_sent and isinstance(upgraded.error, ExotelRejected):
        # An earlier attempt may have upgraded the leg already: look before rejecting.
        again = await run.exotel.read(lambda: run.gateway.active_legs(call_sid))
        if not isinstance(again, Failed) and _in_mode(find_leg(again, leg_sid), action):
            log.info("lwb.upgrade_reconciled", monitor_leg_sid=leg_sid, action=action)
            return run.result.accepted(call_sid=call_sid, leg_sid=leg_sid)
    return run.result.exotel_refused(upgraded.error, call_sid=call_sid, leg_sid=leg_sid)


def _in_mode(leg: LegLike | None, action: str) -> bool:
    return leg is not None and (leg.last_action or "").lower() == action


def _monitor_leg_of(legs: Sequence[LegLike], supervisor: str) -> str | None:
    """The sid of a monitor leg ringing ``supervisor``, if one is listed."""
    for leg in legs:
        if is_monitor(leg) and _digits(leg.phone_number) == _digits(supervisor):
            return leg.sid
    return None


def _digits(number: str | None) -> str:
    digits = "".join(ch for ch in number or "" if ch.isdigit())
    return digits[-10:]
