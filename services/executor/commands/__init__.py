"""The executor's command handlers: one per command type, one module per handler.

:data:`HANDLERS` has one row per row of the command table (``contracts/catalog.py``).
A handler gets the decoded command and its :class:`~.run.CommandRun` and returns the one
result; Exotel requests go through the run's :class:`~.exchange.Exchange` (retries, and
the intent recorded before every request with an effect); results and their errors are
built in :mod:`.outcomes`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from contracts.commands import CommandType
from contracts.results import CommandResult
from services.executor.commands import connect, hangup, lwb
from services.executor.commands.run import CommandRun

Handler = Callable[[Any, CommandRun], Awaitable[CommandResult]]

HANDLERS: Final[Mapping[CommandType, Handler]] = {
    "call.connect": connect.handle,
    "lwb.action": lwb.handle,
    "leg.hangup": hangup.handle,
}
