"""v1 Number metadata: ``GET /v1/Accounts/{sid}/Numbers/{number}[.json]`` (circle, type,
operator, DND), chosen by the number's digits (see README, "Number rules")."""

from __future__ import annotations

from starlette.responses import Response

from services.exotel.fields import Numbers
from services.sandbox import numbers
from services.sandbox.apirequest import ApiRequest
from services.sandbox.context import Sandbox
from services.sandbox.handlers_v1 import invalid
from services.sandbox.responses import v1_response


async def number_metadata(_sb: Sandbox, req: ApiRequest) -> Response:
    number = req.params.get("number", "")
    national = numbers.national_number(number)
    if national is None:
        raise invalid("Number", "An Indian phone number: 10 digits, with +91 or 0 before them")
    circle, circle_name = numbers.circle_of(national)
    operator, operator_name = numbers.operator_of(national)
    body = {
        Numbers.PHONE_NUMBER: f"0{national}",
        Numbers.CIRCLE: circle,
        Numbers.CIRCLE_NAME: circle_name,
        Numbers.TYPE: numbers.number_type(national),
        Numbers.OPERATOR: operator,
        Numbers.OPERATOR_NAME: operator_name,
        Numbers.DND: numbers.number_dnd(national),
    }
    return v1_response({Numbers.NUMBERS: body}, as_json=req.as_json)
