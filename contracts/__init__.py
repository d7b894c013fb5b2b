"""voicebus's public message contract (DESIGN.md): commands, results and status facts."""

from contracts.commands import (
    COMMAND_MODELS,
    CallConnect,
    Command,
    CommandType,
    LegHangup,
    LwbAction,
)
from contracts.results import CommandError, CommandResult, ErrorCode, Outcome
from contracts.status import TERMINAL_STATUSES, CallStatusEvent, LegStatus, NormalisedStatus

__all__ = [
    "COMMAND_MODELS",
    "TERMINAL_STATUSES",
    "CallConnect",
    "CallStatusEvent",
    "Command",
    "CommandError",
    "CommandResult",
    "CommandType",
    "ErrorCode",
    "LegHangup",
    "LegStatus",
    "LwbAction",
    "NormalisedStatus",
    "Outcome",
]
