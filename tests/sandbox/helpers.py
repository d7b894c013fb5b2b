"""Request builders shared by the sandbox tests."""

from __future__ import annotations

from typing import Any


class Paths:
    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.v1 = f"/v1/Accounts/{sid}/Calls"
        self.v2 = f"/v2/accounts/{sid}/calls"
        self.v3 = f"/v3/accounts/{sid}/calls"


def connect_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "From": "+919800012345",
        "To": "+919811154321",
        "CallerId": "08047112345",
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


def v3_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": {"contact_uri": "+919800012345", "state_management": False},
        "to": {"contact_uri": "+919811154321"},
        "virtual_number": "+918047112345",
    }
    body.update(overrides)
    return body
