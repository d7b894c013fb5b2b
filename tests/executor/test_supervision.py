"""Which leg lwb.action and leg.hangup act on, and which monitor upgrades are allowed.

Uses Exotel's own active-legs samples (tests/data/exotel/, from lwb-legs-and-hangup.txt)
where the docs have one; inbound and ambiguous calls are built from the same shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.executor.supervision import (
    IllegalTransition,
    NoTargetLeg,
    check_upgrade,
    origin_of,
    pick_agent_leg,
    pick_customer_leg,
    resolve_selector,
)
from services.exotel.models import ActiveLeg

DATA = Path(__file__).resolve().parents[1] / "data" / "exotel"
IST = ZoneInfo("Asia/Kolkata")


def sample_legs(name: str) -> list[ActiveLeg]:
    return ActiveLeg.list_from(json.loads((DATA / name).read_bytes()), IST)


def leg(sid: str, origin: str, *, status: str = "in-progress", last_action: str = "") -> ActiveLeg:
    item: dict[str, Any] = {
        "sid": sid,
        "callsid": "call-1",
        "phonenumber": "09876543210",
        "status": status,
        "origin": origin,
        "lastaction": last_action,
        "datecreated": "2020-12-22 17:31:06",
    }
    return ActiveLeg.from_item(item, IST)


# ------------------------------------------------------------------ agent leg


def test_outbound_connect_call_agent_is_the_outbound_leg_of_the_doc_sample() -> None:
    legs = sample_legs("activelegs_two_legs.json")
    agent = pick_agent_leg(legs)
    assert agent.sid == "xxxxxxxxxx"
    assert origin_of(agent) == "outbound"
    assert pick_customer_leg(legs).sid == "xxxxx"


def test_monitor_leg_of_the_doc_sample_is_never_the_agent() -> None:
    legs = sample_legs("activelegs.json")  # outbound, outbound-dial, monitor (barge)
    assert [origin_of(x) for x in legs] == ["outbound", "outbound-dial", "monitor"]
    assert pick_agent_leg(legs) is legs[0]
    assert pick_customer_leg(legs) is legs[1]


def test_inbound_call_agent_is_the_leg_exotel_dialled_out_to() -> None:
    legs = [leg("cust", "inbound"), leg("agent", "outbound-dial"), leg("sup", "monitor")]
    assert pick_agent_leg(legs).sid == "agent"
    assert pick_customer_leg(legs).sid == "cust"


def test_origins_as_the_captured_doc_writes_them_are_understood() -> None:
    legs = [leg("a", "Outbound"), leg("c", "outbound dial")]
    assert pick_agent_leg(legs).sid == "a"
    assert pick_customer_leg(legs).sid == "c"
    assert pick_agent_leg([leg("c", "INBOUND"), leg("a", "outbound_dial")]).sid == "a"


def test_inbound_call_with_two_dialled_agents_is_ambiguous() -> None:
    legs = [leg("cust", "inbound"), leg("a1", "outbound-dial"), leg("a2", "outbound-dial")]
    with pytest.raises(NoTargetLeg) as caught:
        pick_agent_leg(legs)
    assert caught.value.reason == "ambiguous"
    assert "a1" in caught.value.message
    assert "a2" in caught.value.message


def test_two_first_legs_are_ambiguous() -> None:
    with pytest.raises(NoTargetLeg) as caught:
        pick_agent_leg([leg("a1", "outbound"), leg("a2", "outbound"), leg("c", "outbound-dial")])
    assert caught.value.reason == "ambiguous"


@pytest.mark.parametrize(
    "legs",
    [
        pytest.param([], id="no legs"),
        pytest.param([leg("sup", "monitor", last_action="listen")], id="only a monitor"),
        pytest.param([leg("c", "outbound-dial")], id="first leg gone"),
        pytest.param([leg("cust", "inbound")], id="inbound, agent not dialled yet"),
        pytest.param(
            [leg("a", "outbound", status="completed"), leg("c", "outbound-dial")],
            id="agent leg ended",
        ),
    ],
)
def test_no_agent_leg(legs: list[ActiveLeg]) -> None:
    with pytest.raises(NoTargetLeg) as caught:
        pick_agent_leg(legs)
    assert caught.value.reason == "none"


def test_outbound_call_still_ringing_the_customer_has_an_agent_but_no_customer() -> None:
    legs = [leg("a", "outbound")]
    assert pick_agent_leg(legs).sid == "a"
    with pytest.raises(NoTargetLeg) as caught:
        pick_customer_leg(legs)
    assert caught.value.reason == "none"


# ------------------------------------------------------------------ selectors


CALL = [
    leg("a", "outbound"),
    leg("c", "outbound-dial"),
    leg("m1", "monitor", last_action="listen"),
    leg("m2", "monitor", last_action="barge"),
]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("agent", ["a"]),
        ("customer", ["c"]),
        ("monitor", ["m1", "m2"]),
        ("all", ["m1", "m2", "a", "c"]),
    ],
)
def test_selectors(selector: Any, expected: list[str]) -> None:
    assert [x.sid for x in resolve_selector(CALL, selector)] == expected


def test_selector_monitor_on_the_doc_sample_finds_the_barge_leg() -> None:
    (monitor,) = resolve_selector(sample_legs("activelegs.json"), "monitor")
    assert monitor.last_action == "barge"


@pytest.mark.parametrize(
    ("selector", "legs"),
    [
        ("monitor", [leg("a", "outbound"), leg("c", "outbound-dial")]),
        ("all", []),
        ("customer", [leg("a", "outbound"), leg("m", "monitor")]),
        ("agent", [leg("c", "outbound-dial"), leg("m", "monitor")]),
    ],
)
def test_selector_with_nothing_to_select(selector: Any, legs: list[ActiveLeg]) -> None:
    with pytest.raises(NoTargetLeg) as caught:
        resolve_selector(legs, selector)
    assert caught.value.reason == "none"


def test_all_skips_legs_that_have_already_ended() -> None:
    legs = [leg("a", "outbound"), leg("c", "outbound-dial", status="completed")]
    assert [x.sid for x in resolve_selector(legs, "all")] == ["a"]


# ------------------------------------------------------------------ upgrades


@pytest.mark.parametrize(
    ("current", "wanted", "allowed"),
    [
        ("listen", "whisper", True),
        ("listen", "barge", True),
        ("whisper", "barge", True),
        ("whisper", "whisper", False),
        ("barge", "whisper", False),
        ("barge", "barge", False),
        ("Listen", "barge", True),
    ],
)
def test_transition_table(current: str, wanted: str, allowed: bool) -> None:
    monitor = leg("m", "monitor", last_action=current)
    if allowed:
        assert check_upgrade(monitor, wanted).current == current.lower()
    else:
        with pytest.raises(IllegalTransition) as caught:
            check_upgrade(monitor, wanted)
        assert f"{current} -> {wanted}" in str(caught.value)


def test_doc_sample_barge_leg_cannot_go_back_to_whisper() -> None:
    monitor = sample_legs("activelegs.json")[2]
    with pytest.raises(IllegalTransition):
        check_upgrade(monitor, "whisper")


@pytest.mark.parametrize("last_action", ["", "hangup"])
def test_unknown_mode_is_left_to_exotel(last_action: str) -> None:
    assert not check_upgrade(leg("m", "monitor", last_action=last_action), "barge").known
    assert not check_upgrade(None, "whisper").known
