"""Which outcome a phone number asks for, by its last four digits (see README)."""

from __future__ import annotations

import re
from typing import Literal

LegOutcome = Literal["answer", "busy", "no-answer", "failed", "long"]

_UNANSWERED: dict[str, LegOutcome] = {"1111": "busy", "2222": "no-answer", "3333": "failed"}


def last_four(number: str) -> str:
    """The last four digits of a number (non-digits ignored)."""
    return re.sub(r"\D", "", number)[-4:]


def agent_outcome(number: str) -> LegOutcome:
    """What the first (From / agent / monitor) leg does when rung."""
    return _UNANSWERED.get(last_four(number), "answer")


def customer_outcome(number: str) -> LegOutcome:
    """What the second (To / customer) leg does when rung."""
    if last_four(number) == "5555":
        return "long"
    return _UNANSWERED.get(last_four(number), "answer")


def is_busy_device(number: str) -> bool:
    """An agent device that is busy on another call (v2/v3 answer 409 / 10706)."""
    return last_four(number) == "9999"


def is_unknown_exophone(number: str) -> bool:
    """A CallerId / virtual_number that is not an ExoPhone of the account."""
    return last_four(number) == "0000"


def same_number(left: str, right: str) -> bool:
    """Loose equality: the last ten digits match (0-prefix, +91 and E.164 agree)."""
    a, b = re.sub(r"\D", "", left)[-10:], re.sub(r"\D", "", right)[-10:]
    return bool(a) and a == b
