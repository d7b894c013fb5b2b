"""The command table: what each command type is, in one place.

Everything that needs to know the command types derives it from :data:`COMMANDS`: the
topics (:mod:`contracts.topics`), decoding (:mod:`contracts.decoding`), the client's key
and the CLI's choices, the AsyncAPI document, the executor's ordering keys and hold
policy, and the metrics service's per-command labels. The executor's handler table
(``services/executor/commands/__init__.py``) has one handler per row.

Ordering (see ``services/executor/dispatch.py``):

* ``topic``: commands with the same message key run in order within their own topic
  (``call.connect``: the producer chooses the key, the agent's number is recommended);
* ``call``: the key is a call sid shared by several command topics (``lwb.action`` and
  ``leg.hangup`` are co-partitioned by it), so commands of one call run in order across
  topics, and each waits (``hold``) for an earlier-published one still in flight on the
  other topic: until the consumer knows that partition has nothing earlier left, at most
  ``EXECUTOR_ORDERING_WINDOW_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from contracts.commands import (
    CallConnect,
    CallLookup,
    Command,
    CommandType,
    LegHangup,
    LwbAction,
    NumberLookup,
)

Ordering = Literal["topic", "call"]


@dataclass(frozen=True)
class ResultLabel:
    """How the metrics service labels a command type's results.

    Results do not carry the label, so the metrics service reads it from the command
    itself (``field``) and joins it with the result by ``command_id``.
    """

    metric: str
    documentation: str
    name: str
    field: str
    values: tuple[str, ...]
    #: a command giving this field (and not ``field``) is labelled ``sid``
    sid_field: str | None = None

    def of(self, command: Mapping[str, Any]) -> str:
        """The label of one decoded command body (``invalid`` when it names none)."""
        value = command.get(self.field)
        if self.sid_field is not None and command.get(self.sid_field) and value is None:
            return "sid"
        return value if isinstance(value, str) and value in self.values else "invalid"


@dataclass(frozen=True)
class CommandSpec:
    """One command type: its topic, model, key, ordering and how it is counted."""

    name: CommandType
    model: type[Command]
    summary: str
    #: the recommended message key: the model attribute and how it is described
    key_attribute: str
    key_description: str
    ordering: Ordering
    #: held for the ordering window so that an earlier command of the same key on
    #: another topic can overtake it
    hold: bool
    #: an accepted result's ``call_sid`` is a new call (watched until its terminal status)
    places_call: bool
    result_label: ResultLabel | None = None

    @property
    def topic(self) -> str:
        return self.name

    @property
    def result_topic(self) -> str:
        return f"{self.name}.result"

    def recommended_key(self, command: Command) -> str:
        """The message key a producer should use for ``command``."""
        return str(getattr(command, self.key_attribute))

    def ordering_key(self, key: bytes) -> str:
        """Commands with the same ordering key run one after another."""
        return key.hex() if self.ordering == "call" else f"{self.topic}:{key.hex()}"


COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec(
        name="call.connect",
        model=CallConnect,
        summary="Place a call: ring `from` (the agent) first, then connect `to` or a call flow.",
        key_attribute="from_",
        key_description="Producer's choice; the agent's number (`from`) is recommended.",
        ordering="topic",
        hold=False,
        places_call=True,
    ),
    CommandSpec(
        name="lwb.action",
        model=LwbAction,
        summary="Listen, whisper or barge into a live call as a supervisor (Exotel LWB).",
        key_attribute="call_sid",
        key_description="`call_sid`: one call's commands run in order.",
        ordering="call",
        hold=True,
        places_call=False,
        result_label=ResultLabel(
            metric="voicebus_lwb_actions",
            documentation="lwb.action results, by monitor mode (listen, whisper, barge; "
            "unknown when the command was not seen; invalid when it named none) and outcome.",
            name="mode",
            field="action",
            values=("listen", "whisper", "barge"),
        ),
    ),
    CommandSpec(
        name="leg.hangup",
        model=LegHangup,
        summary="Hang up one leg (by `leg_sid`) or a selected one (agent, customer, monitor, all).",
        key_attribute="call_sid",
        key_description="`call_sid`: one call's commands run in order.",
        ordering="call",
        hold=True,
        places_call=False,
        result_label=ResultLabel(
            metric="voicebus_leg_hangups",
            documentation="leg.hangup results, by the leg asked for (agent, customer, "
            "monitor, all; sid when a leg sid was given; unknown, invalid) and outcome.",
            name="leg",
            field="leg",
            values=("agent", "customer", "monitor", "all"),
            sid_field="leg_sid",
        ),
    ),
    CommandSpec(
        name="number.lookup",
        model=NumberLookup,
        summary="Look a number up (Exotel's Number metadata): circle, type, operator, DND; "
        "cached per account and number.",
        key_attribute="number",
        key_description="`number`: lookups of one number run in order (and hit one "
        "replica's cache).",
        ordering="topic",
        hold=False,
        places_call=False,
    ),
    CommandSpec(
        name="call.lookup",
        model=CallLookup,
        summary="One call's details (`call_sid`), or a backfill of every call a `filter` "
        "matches; each call becomes a `CallDetails` fact on `call.details`.",
        key_attribute="message_key",
        key_description="`call_sid`, or `command_id` for a filter (a backfill).",
        ordering="topic",
        hold=False,
        places_call=False,
    ),
)

BY_TYPE: Final[Mapping[str, CommandSpec]] = {spec.name: spec for spec in COMMANDS}


def spec_for(topic: str) -> CommandSpec | None:
    """The command published on ``topic``, if any."""
    return BY_TYPE.get(topic)


def spec_of(command: Command) -> CommandSpec:
    """The spec of a decoded command."""
    for spec in COMMANDS:
        if isinstance(command, spec.model):
            return spec
    raise TypeError(f"not a voicebus command: {type(command).__name__}")
