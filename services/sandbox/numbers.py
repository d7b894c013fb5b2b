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


# -- Number metadata (GET /v1/Accounts/{sid}/Numbers/{number}) -----------------------

#: Circle codes and names from Exotel's table (the 22 licensed service areas).
CIRCLES: tuple[tuple[str, str], ...] = (
    ("AP", "Andhra Pradesh Telecom Circle"),
    ("AS", "Assam Telecom Circle"),
    ("BR", "Bihar & Jharkhand Telecom Circle"),
    ("CH", "Chennai Metro Telecom Circle (includes Chennai, MEPZ & Mahabalipuram)"),
    ("DL", "Delhi Metro Telecom Circle (includes NCR, Faridabad, Ghaziabad, Gurgaon & Noida)"),
    ("GJ", "Gujarat Telecom Circle (includes Daman & Diu, Dadra & Nagar Haveli)"),
    ("HP", "Himachal Pradesh Telecom Circle"),
    ("HR", "Haryana Telecom Circle (excludes Faridabad, Gurgaon & Panchkula)"),
    ("JK", "Jammu & Kashmir Telecom Circle"),
    ("KL", "Kerala Telecom Circle (includes Lakshadeep)"),
    ("KA", "Karnataka Telecom Circle"),
    (
        "KO",
        (
            "Kolkata Metro Telecom Circle (includes parts of Haora, Hooghly, North & South "
            "24 Parganas and Nadia Districts)"
        ),
    ),
    ("MH", "Maharashtra Telecom Circle (includes Goa but excludes Mumbai, Navi Mumbai & Kalyan)"),
    ("MP", "Madhya Pradesh & Chhattisgarh Telecom Circle"),
    ("MU", "Mumbai Metro Telecom Circle (includes Navi Mumbai & Kalyan)"),
    (
        "NE",
        (
            "North East India Telecom Circle (includes Arunachal Pradesh, Meghalaya, Mizoram, "
            "Nagaland, Manipur & Tripura)"
        ),
    ),
    ("OR", "Orissa Telecom Circle"),
    ("PB", "Punjab Telecom Circle (includes Chandigarh & Panchkula)"),
    ("RJ", "Rajasthan Telecom Circle"),
    (
        "TN",
        (
            "Tamil Nadu Telecom Circle (excludes CH Chennai, MEPZ, Mahabalipuram & Minjur and "
            "includes Pondicherry except Yanam & Mahe)"
        ),
    ),
    ("UE", "Uttar Pradesh (East) Telecom Circle"),
    ("UW", "Uttar Pradesh (West) & Uttarakhand Telecom Circle (excludes Ghaziabad & Noida)"),
)
#: Operator codes and names from Exotel's table (those still operating mobile networks).
OPERATORS: tuple[tuple[str, str], ...] = (
    ("A", "Airtel"),
    ("V", "Vodafone"),
    ("I", "Idea"),
    ("R", "Reliance"),
    ("B", "BSNL"),
    ("MT", "MTNL"),
    ("T", "Tata"),
)
NumberDnd = Literal["Yes", "No", "Unavailable"]
_DND: dict[str, NumberDnd] = {"7777": "Yes", "7778": "Unavailable"}
_NATIONAL = 10


def national_number(number: str) -> str | None:
    """The 10-digit national number of an Indian number (``+91``, ``91`` or ``0`` prefix,
    or none), or ``None`` when it is not one."""
    if not re.fullmatch(r"\+?[0-9]{6,20}", number):
        return None
    digits = re.sub(r"\D", "", number)
    for prefix in ("91", "0", ""):
        rest = digits[len(prefix) :] if digits.startswith(prefix) else None
        if rest is not None and len(rest) == _NATIONAL:
            return rest
    return None


def number_dnd(number: str) -> NumberDnd:
    """DND by the last four digits: ``7777`` registered, ``7778`` unavailable, else not."""
    return _DND.get(last_four(number), "No")


def number_type(national: str) -> str:
    """Indian mobile numbers start with 6 to 9; the rest are landlines."""
    return "Mobile" if national[0] in "6789" else "Landline"


def circle_of(national: str) -> tuple[str, str]:
    """A circle chosen by the 2nd and 3rd digits (deterministic, not a numbering plan)."""
    return CIRCLES[int(national[1:3]) % len(CIRCLES)]


def operator_of(national: str) -> tuple[str, str]:
    """An operator chosen by the 4th and 5th digits (deterministic, not a numbering plan)."""
    return OPERATORS[int(national[3:5]) % len(OPERATORS)]
