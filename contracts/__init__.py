"""voicebus's public message contract (docs/architecture.md): commands, results and status
facts, and the table of command types."""

from contracts.catalog import COMMANDS, CommandSpec, spec_for, spec_of
from contracts.commands import (
    CallConnect,
    Command,
    CommandType,
    LegHangup,
    LwbAction,
)
from contracts.results import CommandError, CommandResult, ErrorCode, Outcome
from contracts.status import TERMINAL_STATUSES, CallStatusEvent, LegStatus, NormalisedStatus

__all__ = [
    "COMMANDS",
    "TERMINAL_STATUSES",
    "CallConnect",
    "CallStatusEvent",
    "Command",
    "CommandError",
    "CommandResult",
    "CommandSpec",
    "CommandType",
    "ErrorCode",
    "LegHangup",
    "LegStatus",
    "LwbAction",
    "NormalisedStatus",
    "Outcome",
    "spec_for",
    "spec_of",
]
