"""The metrics service as a real process against the real broker: facts in, /metrics out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer

from services.metrics.handlers import METRICS_TOPICS
from tests.metrics.facts import T0, result, sample_event, status_json
from tests.metrics.scrape import sample, scrape, settled, total, wait_for_metrics
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def metrics_env(kafka_env: dict[str, str]) -> dict[str, str]:
    return {
        **kafka_env,
        "METRICS_GROUP_ID": f"metrics-{uuid.uuid4().hex[:8]}",
        "METRICS_EXECUTOR_GROUP_ID": f"idle-executor-{uuid.uuid4().hex[:8]}",
        "METRICS_LAG_INTERVAL_SECONDS": "0.5",
        "METRICS_COMMIT_INTERVAL_SECONDS": "0.2",
    }


@pytest.fixture
def metrics_service(metrics_env: dict[str, str]) -> Iterator[ServiceProcess]:
    with ServiceProcess("metrics", metrics_env) as service:
        yield service


async def send(bootstrap: str, messages: list[tuple[str, bytes, str, dict[str, str]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, value, key, headers in messages:
            await producer.send_and_wait(
                topic,
                value,
                key=key.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            )
    finally:
        await producer.stop()


async def test_facts_become_metrics_and_a_restart_does_not_recount(
    metrics_service: ServiceProcess, metrics_env: dict[str, str], kafka_env: dict[str, str]
):
    bootstrap = kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
    url = metrics_service.url
    before = await settled(url)  # whatever earlier tests left on the topics is counted
    account = f"acct-{uuid.uuid4().hex[:8]}"
    sid = f"call-{uuid.uuid4().hex}"
    terminal = sample_event(
        "v3_terminal.json",
        call_sid=sid,
        event_id=f"ev-{uuid.uuid4().hex}",
        received_at=T0 + timedelta(seconds=60.4),
    )
    marker = uuid.uuid4().hex
    await send(
        bootstrap,
        [
            (
                "call.connect.result",
                result(command_id=f"{marker}-1", call_sid=sid, account=account, api="v3"),
                sid,
                {},
            ),
            (
                "call.connect.result",
                result(command_id=f"{marker}-2", call_sid=f"{sid}-2", account=account, api="v3"),
                sid,
                {},
            ),
            (
                "call.connect.result",
                result(
                    outcome="rejected",
                    command_id=f"{marker}-3",
                    call_sid=None,
                    account=account,
                    api=None,
                    error_code="exotel_rejected",
                ),
                marker,
                {},
            ),
            ("call.status", status_json(terminal), sid, {}),
            ("call.status", status_json(terminal), sid, {}),  # Exotel retried the callback
            (
                "call.connect.dlq",
                b"\xff\xfe",
                marker,
                {
                    "error": "not UTF-8",
                    "origin_topic": "call.connect",
                    "origin_partition": "0",
                    "origin_offset": marker,
                },
            ),
        ],
    )

    def counted(s):
        return (
            sample(
                s,
                "voicebus_commands_total",
                command_type="call.connect",
                account=account,
                api="v3",
                outcome="accepted",
            )
            == 2
            and sample(
                s,
                "voicebus_commands_total",
                command_type="call.connect",
                account=account,
                api="none",
                outcome="rejected",
            )
            == 1
            and sample(s, "voicebus_metrics_duplicates_total", topic="call.status")
            == sample(before, "voicebus_metrics_duplicates_total", topic="call.status") + 1
            and sample(s, "voicebus_dlq_messages_total", topic="call.connect.dlq")
            == sample(before, "voicebus_dlq_messages_total", topic="call.connect.dlq") + 1
        )

    after = await wait_for_metrics(url, counted, what="the published facts")

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("voicebus_call_outcomes_total", api="v3", status="completed") == 1
    # Histogram sums accumulate floats: a difference of two sums carries rounding error.
    assert delta("voicebus_call_talk_seconds_sum", api="v3") == pytest.approx(11)
    assert delta("voicebus_call_result_to_terminal_seconds_count", source="callback") == 1
    assert delta(
        "voicebus_call_result_to_terminal_seconds_sum", source="callback"
    ) == pytest.approx(60)
    assert (
        delta(
            "voicebus_call_status_events_total", api="v3", event_type="terminal", source="callback"
        )
        == 1
    )
    assert (
        delta("voicebus_command_errors_total", command_type="call.connect", code="exotel_rejected")
        == 1
    )
    assert sample(after, "voicebus_metrics_ready") == 1

    # consumer lag: an executor group that never ran lags by every command on its topics
    await send(bootstrap, [("call.connect", b'{"command_id": "lag-probe"}', marker, {})])
    executor_group = metrics_env["METRICS_EXECUTOR_GROUP_ID"]
    own_group = metrics_env["METRICS_GROUP_ID"]
    lagging = await wait_for_metrics(
        url,
        lambda s: (
            sample(
                s,
                "voicebus_consumer_group_lag_messages",
                group=executor_group,
                topic="call.connect",
            )
            >= 1
        ),
        what="the idle executor group's lag",
    )
    for topic in ("lwb.action", "leg.hangup"):
        assert (
            "voicebus_consumer_group_lag_messages",
            frozenset({("group", executor_group), ("topic", topic)}),
        ) in lagging
    own = [
        total(lagging, "voicebus_consumer_group_lag_messages", group=own_group, topic=t)
        for t in METRICS_TOPICS
    ]
    assert len(own) == len(METRICS_TOPICS)
    assert sample(lagging, "voicebus_metrics_lag_checks_total", outcome="ok") >= 1

    # restart: SIGTERM commits what was counted; the new process resumes after it
    assert metrics_service.stop() == 0
    with ServiceProcess("metrics", metrics_env) as again:
        await send(
            bootstrap,
            [
                (
                    "call.connect.result",
                    result(
                        command_id=f"{marker}-4", call_sid=f"{sid}-4", account=account, api="v3"
                    ),
                    sid,
                    {},
                )
            ],
        )
        restarted = await wait_for_metrics(
            again.url,
            lambda s: (
                sample(
                    s,
                    "voicebus_commands_total",
                    command_type="call.connect",
                    account=account,
                    api="v3",
                    outcome="accepted",
                )
                >= 1
            ),
            what="the fact published after the restart",
        )
        restarted = await settled(again.url)
        labels = {"command_type": "call.connect", "account": account}
        assert (
            sample(restarted, "voicebus_commands_total", **labels, api="v3", outcome="accepted")
            == 1
        )
        assert (
            sample(restarted, "voicebus_commands_total", **labels, api="none", outcome="rejected")
            == 0
        )
        assert (
            sample(restarted, "voicebus_call_result_to_terminal_seconds_count", source="callback")
            == 0
        )
        assert scrape(again.url)  # still answering
    assert again.process is not None
    assert again.process.returncode == 0
