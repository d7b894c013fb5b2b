"""Turn a command message's bytes into a command, or say clearly why not.

The executor decodes every command with this; the client and the CLI check a command
with it before publishing, so a producer sees exactly the executor's verdict.

bytes -> not UTF-8 / not JSON / not an object / no command_id -> UnreadableCommand: DLQ
      -> JSON object with a command_id but an invalid field -> InvalidCommand: rejected
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts.catalog import spec_for, spec_of
from contracts.commands import Command, CommandType

MAX_COMMAND_BYTES = 256 * 1024


class UnreadableCommand(Exception):
    """The message cannot be read as a command at all: it goes to the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InvalidCommand:
    """A readable command with an invalid field: it gets a ``rejected`` result."""

    command_type: CommandType
    command_id: str
    account: str
    field: str
    message: str


def command_type_of(decoded: Command | InvalidCommand) -> CommandType:
    """The command type of what :func:`decode_command` returned."""
    if isinstance(decoded, InvalidCommand):
        return decoded.command_type
    return spec_of(decoded).name


def decode_command(topic: str, value: bytes | None) -> Command | InvalidCommand:
    """Decode a message from a command topic."""
    spec = spec_for(topic)
    if spec is None:
        raise UnreadableCommand(f"no command is published on topic {topic!r}")
    if not value:
        raise UnreadableCommand("empty message")
    if len(value) > MAX_COMMAND_BYTES:
        raise UnreadableCommand(f"message of {len(value)} bytes is over {MAX_COMMAND_BYTES}")
    try:
        data: Any = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UnreadableCommand(f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except ValueError as exc:
        raise UnreadableCommand(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise UnreadableCommand("not JSON: nested too deeply") from exc
    if not isinstance(data, dict):
        raise UnreadableCommand(f"JSON {type(data).__name__} where an object was expected")
    command_id = data.get("command_id")
    if not isinstance(command_id, str) or not 1 <= len(command_id) <= 128:
        raise UnreadableCommand("no usable 'command_id' (a string of 1 to 128 characters)")
    try:
        return spec.model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(command)"
        account = data.get("account")
        return InvalidCommand(
            command_type=spec.name,
            command_id=command_id,
            account=account if isinstance(account, str) and len(account) <= 64 else "default",
            field=field,
            message=f"invalid field '{field}': {first['msg']}",
        )
