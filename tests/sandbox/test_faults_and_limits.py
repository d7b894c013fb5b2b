"""Injected faults, chaos, latency, rate limits and the request log."""

from __future__ import annotations

import time

import httpx
import pytest

from services.sandbox.testing import CallbackReceiver, SandboxControl, SandboxServer
from tests.sandbox.helpers import Paths, connect_form, v3_body


def test_two_injected_503s_then_the_connect_succeeds(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    control.add_fault("connect", method="POST", status=503, count=2)

    answers = [exotel.post(f"{paths.v1}/connect.json", data=connect_form()) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [503, 503, 200]
    assert answers[0].json()["RestException"]["Status"] == 503
    log = control.requests()
    assert [entry["status"] for entry in log] == [503, 503, 200]
    assert [entry["fault"] is not None for entry in log] == [True, True, False]


def test_faults_use_the_error_shape_of_the_api_version(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    control.add_fault("/v3/", status=500)
    control.add_fault("/v1/", status=502)

    v3 = exotel.post(paths.v3, json=v3_body())
    v1 = exotel.get(f"{paths.v1}/{'a' * 32}")

    assert v3.status_code == 500
    assert v3.json()["response"]["status"] == "failure"
    assert v3.json()["response"]["error_data"]["code"] == 1100
    assert v1.status_code == 502
    assert "<RestException>" in v1.text


def test_a_fault_with_a_raw_body_answers_that_body(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    control.add_fault("connect", status=502, body="<html>bad gateway</html>")

    answer = exotel.post(f"{paths.v1}/connect", data=connect_form())

    assert answer.status_code == 502
    assert answer.text == "<html>bad gateway</html>"


def test_a_timeout_fault_delays_the_answer_but_still_places_the_call(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    control.add_fault("connect", kind="timeout", delay_seconds=1.0)

    with pytest.raises(httpx.ReadTimeout):
        exotel.post(f"{paths.v1}/connect.json", data=connect_form(), timeout=0.3)

    def placed(entries: list[dict[str, object]]) -> bool:
        return any(entry["status"] == 200 and entry["call_sid"] for entry in entries)

    deadline = time.monotonic() + 5
    while not placed(entries := control.requests()):
        assert time.monotonic() < deadline, entries
        time.sleep(0.05)
    assert entries[0]["fault"] == "fault:timeout:None"


def test_a_rate_limit_fault_answers_429_with_retry_after_in_exotel_shapes(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    control.add_fault("connect", kind="rate_limit", retry_after=7)
    control.add_fault("/v3/", kind="rate_limit")

    v1 = exotel.post(f"{paths.v1}/connect.json", data=connect_form())
    v3 = exotel.post(paths.v3, json=v3_body())

    assert v1.status_code == 429
    assert v1.headers["retry-after"] == "7"
    assert v1.json()["RestException"]["Code"] == "RATE_LIMIT_EXCEEDED"
    assert v3.status_code == 429
    assert v3.json()["response"]["error_data"]["code"] == 10724
    assert control.rate_stats()["injected_429_total"] == 2


def test_voice_requests_over_the_limit_get_429_until_the_window_frees(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    control.set_rate_limits(voice_calls_per_minute=2, get_per_minute=1)

    voice = [exotel.post(f"{paths.v3}", json=v3_body()).status_code for _ in range(3)]
    v1_voice = exotel.post(f"{paths.v1}/connect", data=connect_form())
    gets = [exotel.get(f"{paths.v1}/{'b' * 32}.json").status_code for _ in range(2)]
    stats = control.rate_stats()

    assert voice == [200, 200, 429]
    assert v1_voice.status_code == 429
    assert 1 <= int(v1_voice.headers["retry-after"]) <= 60
    assert "RATE_LIMIT_EXCEEDED" in v1_voice.text
    assert gets == [404, 429]
    assert stats["families"]["voice"]["accepted"] == 2
    assert stats["families"]["voice"]["rejected_429"] == 2
    assert stats["families"]["get"]["rejected_429"] == 1
    assert stats["families"]["voice"]["max_in_any_minute"] == 2


def test_rate_limits_can_be_switched_off(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    control.set_rate_limits(voice_calls_per_minute=1, enabled=False)

    answers = [exotel.post(paths.v3, json=v3_body()).status_code for _ in range(3)]

    assert answers == [200, 200, 200]


def test_chaos_with_a_seed_breaks_some_requests_and_clearing_faults_stops_it(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    control.chaos(0.5, kinds=["5xx", "rate_limit"], seed=7)
    noisy = [exotel.get(f"{paths.v1}/{'c' * 32}.json").status_code for _ in range(30)]
    control.clear_faults()
    quiet = [exotel.get(f"{paths.v1}/{'c' * 32}.json").status_code for _ in range(5)]

    assert {429, 404} <= set(noisy)
    assert any(status >= 500 for status in noisy)
    assert quiet == [404] * 5


def test_added_latency_slows_every_answer(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    control.set_latency(0.3)
    started = time.monotonic()
    exotel.get(f"{paths.v1}/{'d' * 32}.json")

    assert time.monotonic() - started >= 0.3


def test_the_request_log_records_every_request_with_its_command_id(
    exotel: httpx.Client, paths: Paths, control: SandboxControl, receiver: CallbackReceiver
) -> None:
    form = connect_form(StatusCallback=receiver.url("/cb", command_id="cmd-log-1", a="b"))
    sid = exotel.post(f"{paths.v1}/connect.json", data=form).json()["Call"]["Sid"]
    v3 = v3_body(status_callback=[{"event": "terminal", "url": receiver.url(command_id="c-v3")}])
    exotel.post(paths.v3, json=v3)
    exotel.get(f"{paths.v1}/{sid}", params={"details": "true"})

    log = control.requests()
    first, second, third = log
    assert [entry["seq"] for entry in log] == sorted(entry["seq"] for entry in log)
    assert first["method"] == "POST"
    assert first["path"] == f"{paths.v1}/connect.json"
    assert first["content_type"] == "application/x-www-form-urlencoded"
    assert first["form"]["From"] == "+919800012345"
    assert first["status"] == 200
    assert first["call_sid"] == sid
    assert first["command_id"] == "cmd-log-1"
    assert second["json"]["virtual_number"] == "+918047112345"
    assert second["command_id"] == "c-v3"
    assert third["query"] == {"details": "true"}
    assert third["call_sid"] == sid
    assert control.requests(since=second["seq"]) == [third]
    control.clear_requests()
    assert control.requests() == []


def test_admin_end_call_ends_a_long_call_now(
    exotel: httpx.Client, paths: Paths, control: SandboxControl
) -> None:
    sid = exotel.post(f"{paths.v1}/connect.json", data=connect_form(To="+919811155555")).json()[
        "Call"
    ]["Sid"]
    control.wait_for_call(sid, lambda call: call["status"] == "in-progress")
    view = control.end_call(sid)

    assert view["status"] == "completed"
    assert view["end_cause"] == "admin"


async def test_the_helpers_work_from_async_tests(sandbox: SandboxServer) -> None:
    control = sandbox.control
    async with httpx.AsyncClient(base_url=sandbox.base_url, auth=sandbox.auth) as client:
        answer = await client.post(
            f"/v1/Accounts/{sandbox.account_sid}/Calls/connect.json", data=connect_form()
        )
        view = await control.wait_for_call_async(answer.json()["Call"]["Sid"])
        entries = await control.requests_async(call_sid=view["sid"])

    assert view["status"] == "completed"
    assert entries[0]["status"] == 200
    assert (await control.health_async())["status"] == "ok"
    await control.aclose()
