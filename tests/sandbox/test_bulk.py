"""The sandbox's bulk call details beyond the basics: ``details=true`` (each call with its
``Details`` block, as Exotel's sample shows), cursor paging oldest first, and the limits
Exotel documents (five numbers per list, one month of calls, six months back)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.sandbox.clock import now, v1_time
from services.sandbox.testing import SandboxControl
from tests.sandbox.helpers import Paths, connect_form


def ended_calls(exotel: httpx.Client, paths: Paths, control: SandboxControl, n: int) -> list[str]:
    sids = []
    for i in range(n):
        answer = exotel.post(f"{paths.v1}/connect.json", data=connect_form(To=f"+91981115000{i}"))
        sids.append(answer.json()["Call"]["Sid"])
    for sid in sids:
        control.wait_for_call(sid)
    return sids


def bulk(exotel: httpx.Client, paths: Paths, **params: Any) -> httpx.Response:
    return exotel.get(f"{paths.v1}.json", params=params)


def test_details_true_gives_each_call_its_details_block(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    (sid,) = ended_calls(exotel, paths, control, 1)
    with_details = bulk(exotel, paths, Sid=sid, details="true").json()["Calls"][0]
    without = bulk(exotel, paths, Sid=sid).json()["Calls"][0]
    assert "Details" not in without
    details = with_details["Details"]
    assert details["Leg1Status"] == details["Leg2Status"] == "completed"
    assert [leg["Leg"]["Id"] for leg in details["Legs"]] == ["1", "2"]
    assert details["ConversationDuration"] >= 1
    assert with_details["Price"] is not None


def test_pages_follow_the_next_page_uri_oldest_first(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    sids = ended_calls(exotel, paths, control, 3)
    since = v1_time(now() - timedelta(minutes=5))
    first = bulk(
        exotel,
        paths,
        Sid=",".join(sids),
        PageSize=2,
        SortBy="DateCreated:asc",
        DateCreated=f"gte:{since}",
        details="true",
    ).json()
    assert [call["Sid"] for call in first["Calls"]] == sids[:2]
    assert first["Metadata"]["Total"] == 3
    second = exotel.get(first["Metadata"]["NextPageUri"]).json()
    assert [call["Sid"] for call in second["Calls"]] == sids[2:]
    assert "Details" in second["Calls"][0], "the next page keeps details=true"
    assert second["Metadata"]["NextPageUri"] is None


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"To": ",".join(f"+9198111500{i:02}" for i in range(6))}, "To"),
        ({"From": ",".join(f"+9198111500{i:02}" for i in range(6))}, "From"),
        ({"PhoneNumber": ",".join(f"+9180471123{i:02}" for i in range(6))}, "PhoneNumber"),
        ({"Sid": ",".join(f"sid{i}" for i in range(101))}, "Sid"),
        ({"Status": "answered"}, "Status"),
        ({"Direction": "sideways"}, "Direction"),
        ({"PageSize": "101"}, "PageSize"),
    ],
)
def test_a_filter_beyond_exotels_limits_is_refused_naming_the_parameter(
    exotel: httpx.Client, paths: Paths, params: dict[str, str], parameter: str
) -> None:
    answer = bulk(exotel, paths, **params)
    assert answer.status_code == 400
    assert f"Invalid parameter {parameter}" in answer.json()["RestException"]["Message"]


def test_a_date_range_over_a_month_or_older_than_six_months_is_refused(
    exotel: httpx.Client, paths: Paths
) -> None:
    today = now()
    too_long = f"gte:{v1_time(today - timedelta(days=40))};lte:{v1_time(today)}"
    too_old = f"gte:{v1_time(today - timedelta(days=200))}"
    fine = f"gte:{v1_time(today - timedelta(days=30))};lte:{v1_time(today)}"
    assert bulk(exotel, paths, DateCreated=too_long).status_code == 400
    assert (
        "1 month"
        in bulk(exotel, paths, DateCreated=too_long).json()["RestException"]["Description"]
    )
    assert bulk(exotel, paths, DateCreated=too_old).status_code == 400
    assert bulk(exotel, paths, DateCreated=fine).status_code == 200
