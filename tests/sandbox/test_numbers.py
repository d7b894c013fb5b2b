"""The sandbox's Number metadata (``GET .../Numbers/{number}``): Exotel's shape in JSON and
XML, outcomes chosen by the number's digits, refusals, the GET rate-limit family."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest

from services.sandbox import numbers
from services.sandbox.testing import SandboxControl, SandboxServer


def numbers_path(sandbox: SandboxServer, number: str, *, json: bool = True) -> str:
    return f"/v1/Accounts/{sandbox.account_sid}/Numbers/{number}{'.json' if json else ''}"


def test_a_mobile_number_reads_like_exotels_sample(
    exotel: httpx.Client, sandbox: SandboxServer
) -> None:
    answer = exotel.get(numbers_path(sandbox, "%2B919812345678"))
    assert answer.status_code == 200
    body = answer.json()["Numbers"]
    assert set(body) == {
        "PhoneNumber",
        "Circle",
        "CircleName",
        "Type",
        "Operator",
        "OperatorName",
        "DND",
    }
    assert body["PhoneNumber"] == "09812345678"
    assert body["Type"] == "Mobile"
    assert body["DND"] == "No"
    assert (body["Circle"], body["CircleName"]) in numbers.CIRCLES
    assert (body["Operator"], body["OperatorName"]) in numbers.OPERATORS


@pytest.mark.parametrize(
    ("number", "dnd"),
    [("+919812347777", "Yes"), ("09812347778", "Unavailable"), ("9812341111", "No")],
)
def test_dnd_is_chosen_by_the_last_four_digits(
    exotel: httpx.Client, sandbox: SandboxServer, number: str, dnd: str
) -> None:
    answer = exotel.get(numbers_path(sandbox, number.replace("+", "%2B")))
    assert answer.json()["Numbers"]["DND"] == dnd


def test_a_landline_is_a_landline_and_xml_is_the_default(
    exotel: httpx.Client, sandbox: SandboxServer
) -> None:
    answer = exotel.get(numbers_path(sandbox, "02241499102", json=False))
    assert answer.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(answer.text)
    assert root.tag == "TwilioResponse"
    assert root.findtext("Numbers/Type") == "Landline"
    assert root.findtext("Numbers/PhoneNumber") == "02241499102"


@pytest.mark.parametrize("bad", ["12345", "%2B14155550100", "98123abcde"])
def test_a_number_that_is_not_indian_is_refused_with_a_rest_exception(
    exotel: httpx.Client, sandbox: SandboxServer, bad: str
) -> None:
    answer = exotel.get(numbers_path(sandbox, bad))
    assert answer.status_code == 400
    assert "Invalid parameter Number" in answer.json()["RestException"]["Message"]


def test_lookups_count_against_the_get_family(
    exotel: httpx.Client, sandbox: SandboxServer, control: SandboxControl
) -> None:
    control.set_rate_limits(get_per_minute=2)
    statuses = [exotel.get(numbers_path(sandbox, "9812345678")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert control.requests()[-1]["family"] == "get"
