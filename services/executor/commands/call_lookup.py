"""``call.lookup``: one call's details, or every call a filter matches (a backfill), each
published as a ``CallDetails`` fact on ``call.details`` before the command's result.

One call (``call_sid``), see :mod:`services.executor.details`::

    details of the API that placed it (else v1), v1's for the price, every leg
      ── ok ──► call.details (source lookup) ──► accepted, lookup.calls = 1
      ── final error ──► rejected / failed with Exotel's code (exotel_not_found: no call)

A backfill (``filter``), bulk call details page by page, oldest first::

    a filter Exotel would refuse ──► rejected invalid_command naming the field, no request
    checkpoint "page 1" (the ledger's intent) ──► page ──► one call.details per call
      (source backfill) + checkpoint "next page, N calls so far" ──► next page ...
      ──► the last page's call.details + accepted, lookup.calls = N, lookup.pages
    a page that fails for good ──► rejected / failed with the counts so far

``run.publish`` hands a fact to the command's writes: the pipeline writes a page's facts
with the checkpoint after it (the last page's with the outcome), through the lane of the
command's partition, so on Apache Kafka a page and its checkpoint commit in one
transaction. A backfill that stops (crash, rebalance, shutdown) has no result; delivered
again, it resumes after its last checkpoint and says so (``lookup.restarted``). With
transactions no call comes twice to a ``read_committed`` consumer (a page written without
its checkpoint was aborted); without them (Tansu) the calls of the page it was on may
have been published twice, with the same ``details_id``, so consumers dedupe on it or on
``call_sid``.
"""

from __future__ import annotations

from functools import partial

import structlog

from contracts.commands import CallLookup
from contracts.results import CommandResult, LookupSummary
from services.executor.commands import outcomes
from services.executor.commands.exchange import Failed
from services.executor.commands.run import CommandRun, Interrupted
from services.executor.details import Fetched, details_fact, fetch_call
from services.executor.mapping.lookup import FilterRefused, bulk_filter

log = structlog.get_logger(__name__)


async def handle(command: CallLookup, run: CommandRun) -> CommandResult:
    if command.call_sid is not None:
        return await _one_call(command, command.call_sid, run)
    return await _backfill(command, run)


async def _one_call(command: CallLookup, call_sid: str, run: CommandRun) -> CommandResult:
    with structlog.contextvars.bound_contextvars(call_sid=call_sid):
        fetched = await fetch_call(
            run.gateway, run.exotel.read, call_sid, command.api or "v1", all_legs=True
        )
        if isinstance(fetched, Failed):
            return run.result.exotel_refused(fetched.error, field="call_sid", call_sid=call_sid)
        fact = details_fact(
            fetched,
            source="lookup",
            account=run.account.name,
            fetched_at=run.clock(),
            lookup_id=command.command_id,
        )
        await run.publish(fact)
        return run.result.accepted(
            call_sid=call_sid, api=fact.api, lookup=LookupSummary(calls=1, pages=0)
        )


async def _backfill(command: CallLookup, run: CommandRun) -> CommandResult:
    if command.filter is None:
        raise ValueError("a backfill needs a filter")
    try:
        filters = bulk_filter(command.filter, now=run.clock())
    except FilterRefused as exc:
        return run.result.rejected(outcomes.filter_refused(exc))
    resumed = run.in_doubt.evidence if run.in_doubt is not None else {}
    page_uri = resumed.get("next") or None
    calls, pages = int(resumed.get("calls", 0)), int(resumed.get("pages", 0))
    restarted = run.in_doubt is not None
    if restarted:
        log.warning("backfill.resumed", calls=calls, pages=pages)
    else:
        await run.exotel.checkpoint({"next": "", "calls": "0", "pages": "0"})
    while True:
        if run.stopping():
            raise Interrupted(f"backfill stopped after {calls} calls in {pages} pages")
        page = await run.exotel.read(
            partial(
                run.gateway.bulk_page,
                filters,
                page_uri=page_uri,
                page_size=run.backfill_page_size,
            )
        )
        if isinstance(page, Failed):
            summary = LookupSummary(calls=calls, pages=pages, restarted=restarted)
            note = f"backfill stopped after {calls} calls in {pages} pages: "
            return run.result.exotel_refused(page.error, note=note, lookup=summary)
        for call in page.calls:
            await run.publish(
                details_fact(
                    Fetched(call),
                    source="backfill",
                    account=run.account.name,
                    fetched_at=run.clock(),
                    lookup_id=command.command_id,
                )
            )
        calls, pages = calls + len(page.calls), pages + 1
        if not page.calls or not page.next_uri or page.next_uri == page_uri:
            break
        page_uri = page.next_uri
        await run.exotel.checkpoint({"next": page_uri, "calls": str(calls), "pages": str(pages)})
    log.info("backfill.done", calls=calls, pages=pages, restarted=restarted)
    return run.result.accepted(lookup=LookupSummary(calls=calls, pages=pages, restarted=restarted))
