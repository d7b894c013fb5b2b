"""``call.connect``: place a call (v1 connect, v2/v3 CCM), or find the call an interrupted
run placed; never ring anyone twice.

    in doubt? ─────────────────► reconcile (call.status of the command, bulk call details)
    build the request ── option not offered ──► rejected invalid_command
    DND check (when on): `to` looked up (cache, else GET) ── on the DND list ──► rejected
                         dnd_blocked          ── lookup failed ──► rejected / failed
    slot, intent, POST ── accepted ──► accepted with the call sid
                       ── timeout after sending (answer lost) ──► reconcile
                       ── any other final error ──► rejected / failed with Exotel's code
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from contracts.commands import ApiVersion, CallConnect
from contracts.results import CommandResult
from services.executor.commands import outcomes
from services.executor.commands.exchange import Failed
from services.executor.commands.number_lookup import look_up
from services.executor.commands.outcomes import Where
from services.executor.commands.run import CommandRun
from services.executor.mapping.connect import UnsupportedOption, build_connect_request
from services.executor.numbers import DndBlocked, dnd_checked, refuse_dnd
from services.executor.ports import InDoubt, StatusSearch
from services.executor.retry import answer_lost

log = structlog.get_logger(__name__)

#: How far before the intent bulk call details are searched (clocks differ).
RECONCILE_SLACK = timedelta(seconds=60)


async def handle(command: CallConnect, run: CommandRun) -> CommandResult:
    if run.in_doubt is not None:
        return await reconcile(command, run, run.in_doubt)
    api = command.api or run.account.default_api
    try:
        request = build_connect_request(
            command,
            api=api,
            callback_url=run.callback_url(api),
            callback_content_type=run.callback_content_type,
        )
    except UnsupportedOption as exc:
        return run.result.rejected(outcomes.unsupported(exc), api=api)

    where: Where = {"api": api}
    if command.to is not None and dnd_checked(command, run.account.dnd_check):
        checked = await look_up(run, command.to)
        if isinstance(checked, Failed):
            note = "DND check of 'to' failed, nobody was rung: "
            return run.result.exotel_refused(checked.error, note=note, field="to", **where)
        where["number"] = checked
        try:
            refuse_dnd(checked)
        except DndBlocked as exc:
            log.info("connect.dnd_blocked", account=run.account.name)
            return run.result.rejected(outcomes.dnd_blocked(exc), **where)

    started = run.clock()
    placed = await run.exotel.effect(
        lambda slot: run.gateway.place_call(request, slot=slot),
        evidence={"from": command.from_, "to": command.to or "", "api": api},
        retry_lost_answers=False,
    )
    if not isinstance(placed, Failed):
        where["call_sid"] = placed.call_sid
        return run.result.accepted(**where)
    if answer_lost(placed.error):
        # No answer, but the request reached Exotel: the call may be ringing. Look for it
        # instead of placing it again (as after a crash).
        log.warning("connect.answer_lost", error=placed.error.message)
        return await reconcile(command, run, _Sent(at=started, evidence={"api": api}))
    return run.result.exotel_refused(placed.error, **where)


async def reconcile(command: CallConnect, run: CommandRun, intent: InDoubt) -> CommandResult:
    """Find the call an interrupted run may have placed; never place it again.

    Two kinds of evidence, looked at until the reconcile window after the intent has
    passed: the call's own status callbacks on ``call.status`` (they carry the command's
    id, and the answered one comes within seconds, however long the call lasts), and
    Exotel's bulk call details by From/To since the intent (finished calls only)."""
    api = _api(intent.evidence.get("api")) or command.api or run.account.default_api
    since = intent.at - RECONCILE_SLACK
    search = run.statuses.search(command.command_id, since) if run.statuses else None
    try:
        return await _look_for_the_call(command, run, intent, api=api, since=since, search=search)
    finally:
        if search is not None:
            await search.close()


async def _look_for_the_call(
    command: CallConnect,
    run: CommandRun,
    intent: InDoubt,
    *,
    api: ApiVersion,
    since: datetime,
    search: StatusSearch | None,
) -> CommandResult:
    loop = asyncio.get_running_loop()
    elapsed = (run.clock() - intent.at).total_seconds()
    give_up = loop.time() + max(0.0, run.reconcile_window_seconds - elapsed)
    while True:
        reported = await search.call_sid() if search is not None else None
        if reported is not None:
            log.info("connect.reconciled", call_sid=reported, evidence="call.status")
            return run.result.accepted(call_sid=reported, api=api)
        found = await run.exotel.read(
            lambda: run.gateway.bulk_call_details(
                from_numbers=[command.from_],
                to_numbers=[command.to] if command.to else [],
                created_from=since,
            )
        )
        if not isinstance(found, Failed) and found:
            call_sid = found[0].call_sid
            log.info("connect.reconciled", call_sid=call_sid, evidence="bulk call details")
            return run.result.accepted(call_sid=call_sid, api=api)
        if loop.time() >= give_up:
            break
        await asyncio.sleep(run.reconcile_poll_seconds)
    lookup = f" (lookup failed: {found.error.message})" if isinstance(found, Failed) else ""
    return run.result.failed(
        outcomes.in_doubt(
            "the request may have reached Exotel before a restart; no call.status event "
            f"carries this command's id and Exotel's bulk call details show no call from "
            f"{command.from_} since {since.isoformat()}{lookup}; "
            "not sent again so that nobody is rung twice"
        ),
        api=api,
    )


@dataclass(frozen=True)
class _Sent:
    """A request of this very run whose answer was lost (in doubt like after a crash)."""

    at: datetime
    evidence: dict[str, str]


_APIS: dict[str, ApiVersion] = {"v1": "v1", "v2": "v2", "v3": "v3"}


def _api(value: str | None) -> ApiVersion | None:
    return _APIS.get(value or "")
