"""``number.lookup``: a number's telecom circle, type, operator and DND registration
(Exotel's Number metadata), from the executor's cache when it was looked up within
``EXECUTOR_NUMBER_CACHE_HOURS``.

    cached ──────────────────────────────────────────────► accepted, number.cached = true
    GET Numbers/{number} (GET family, retried) ── ok ─────► cached; accepted with the number
                                               ── final error ──► rejected / failed

:func:`look_up` is also the DND guard's lookup of a ``call.connect``'s ``to`` number.
"""

from __future__ import annotations

from contracts.commands import NumberLookup
from contracts.results import CommandResult, Dnd, NumberInfo
from services.executor.commands.exchange import Failed
from services.executor.commands.run import CommandRun
from services.executor.numbers import CachedNumber

_DND: dict[str, Dnd] = {"yes": "yes", "no": "no"}


async def handle(command: NumberLookup, run: CommandRun) -> CommandResult:
    found = await look_up(run, command.number)
    if isinstance(found, Failed):
        return run.result.exotel_refused(found.error, field="number")
    return run.result.accepted(number=found)


async def look_up(run: CommandRun, number: str) -> NumberInfo | Failed:
    """The number's metadata: the cache's, else Exotel's (then cached)."""
    cached = run.numbers.get(run.account.name, number)
    if cached is not None:
        return number_info(number, cached, cached=True)
    answer = await run.exotel.read(lambda: run.gateway.number_metadata(number))
    if isinstance(answer, Failed):
        return answer
    entry = CachedNumber(answer, looked_up_at=run.clock())
    run.numbers.put(run.account.name, number, entry)
    return number_info(number, entry, cached=False)


def number_info(number: str, entry: CachedNumber, *, cached: bool) -> NumberInfo:
    """The result's ``number`` block; a DND value Exotel does not document is ``unavailable``."""
    metadata = entry.metadata
    return NumberInfo(
        number=number,
        phone_number=metadata.phone_number,
        circle=metadata.circle,
        circle_name=metadata.circle_name,
        type=metadata.number_type,
        operator=metadata.operator,
        operator_name=metadata.operator_name,
        dnd=_DND.get((metadata.dnd or "").lower(), "unavailable"),
        cached=cached,
        looked_up_at=entry.looked_up_at,
    )
