"""A live Prometheus with deploy/prometheus/'s scrape config and rules, against the executor,
ingress and metrics service running as real processes on the real broker.

The test's copy of prometheus.yml differs only where it must: each job's target is the
test's port instead of its compose host name, and it scrapes and evaluates every second
(the recording rules' own ``interval: 30s`` still applies). rules.yml and alerts.yml are the
repository's files, read where they are.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from contracts.topics import CALL_CONNECT, dlq
from tests.deploy.support import PROMETHEUS, load_yaml, scrape_config_for
from tests.integration.stack import Stack, publish, running_stack
from tests.support.broker import SuiteBroker
from tests.support.kafka_admin import caught_up
from tests.support.prometheus import LivePrometheus, live_prometheus
from tests.support.services import ServiceProcess
from tests.support.tools import tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

JOBS = {"voicebus-executor", "voicebus-ingress", "voicebus-metrics", "prometheus"}


@dataclass
class Services:
    stack: Stack
    metrics: ServiceProcess

    def targets(self, prometheus: str) -> dict[str, str]:
        """Each job of prometheus.yml → where that service listens in this test."""
        return {
            "voicebus-executor": f"127.0.0.1:{self.stack.executor.port}",
            "voicebus-ingress": f"127.0.0.1:{self.stack.ingress.port}",
            "voicebus-metrics": f"127.0.0.1:{self.metrics.port}",
            "prometheus": prometheus,
        }


@pytest.fixture(scope="module")
def services(kafka_env: dict[str, str]) -> Iterator[Services]:
    tool("prometheus")  # skip before starting anything when it cannot be had
    with running_stack(kafka_env) as stack:
        metrics_env = {
            **kafka_env,
            "METRICS_GROUP_ID": f"metrics-{uuid.uuid4().hex[:8]}",
            "METRICS_EXECUTOR_GROUP_ID": stack.executor.env["EXECUTOR_GROUP_ID"],
            "METRICS_LAG_INTERVAL_SECONDS": "1",
        }
        with ServiceProcess("metrics", metrics_env) as metrics:
            yield Services(stack, metrics)


@pytest.fixture(scope="module")
async def prometheus(broker: SuiteBroker, services: Services) -> AsyncIterator[LivePrometheus]:
    # Earlier tests' dead letters are counted before the first scrape, so only this
    # module's can raise voicebus_dlq_messages_total while Prometheus watches.
    group = services.metrics.env["METRICS_GROUP_ID"]
    deadline = time.monotonic() + 60
    while not await caught_up(broker.bootstrap_servers, group, dlq(CALL_CONNECT)):
        assert time.monotonic() < deadline, "the metrics service never read call.connect.dlq"
        await asyncio.sleep(0.2)
    with live_prometheus(lambda itself: scrape_config_for(services.targets(itself))) as live:
        live.eventually(lambda: all_up(live), timeout=30, what="every target up")
        yield live


def all_up(prometheus: LivePrometheus) -> list[dict[str, Any]] | None:
    targets = prometheus.targets()
    up = [t for t in targets if t["health"] == "up"]
    return targets if len(up) == len(JOBS) == len(targets) else None


def alert(
    prometheus: LivePrometheus, name: str, state: str, **labels: str
) -> dict[str, Any] | None:
    """The alert ``name`` in ``state`` whose labels include ``labels``, if Prometheus has it."""
    for found in prometheus.alerts():
        if (
            found["labels"]["alertname"] == name
            and found["state"] == state
            and labels.items() <= found["labels"].items()
        ):
            return found
    return None


def repository_rule_names() -> set[str]:
    return {
        rule.get("record") or rule["alert"]
        for name in ("rules.yml", "alerts.yml")
        for group in load_yaml(PROMETHEUS / name)["groups"]
        for rule in group["rules"]
    }


def test_prometheus_scrapes_every_target_of_the_scrape_config(
    prometheus: LivePrometheus, services: Services
) -> None:
    targets = prometheus.targets()
    assert {t["labels"]["job"] for t in targets} == JOBS
    assert all(t["health"] == "up" and not t["lastError"] for t in targets), targets
    for target in targets:
        job = target["labels"]["job"]
        assert target["scrapeUrl"].endswith(f"{services.targets(prometheus.address)[job]}/metrics")
        if job.startswith("voicebus-"):
            assert target["labels"]["service"] == job.removeprefix("voicebus-")
    up = prometheus.query('up{job=~"voicebus-.*"}')
    assert {s["metric"]["job"] for s in up} == JOBS - {"prometheus"}
    assert all(s["value"][1] == "1" for s in up), up


async def test_the_recording_rules_record_series_from_a_real_call(
    broker: SuiteBroker, prometheus: LivePrometheus, services: Services
) -> None:
    await publish(
        broker.bootstrap_servers,
        CALL_CONNECT,
        {
            "command_id": f"prom-{uuid.uuid4().hex[:12]}",
            "from": "+919876543210",
            "to": "+919812345678",
            "caller_id": "08047112345",
        },
        key="+919876543210",
    )

    def recorded(expr: str) -> list[dict[str, Any]] | None:
        series = prometheus.query(expr)
        return series if series and all(float(s["value"][1]) > 0 for s in series) else None

    completed = prometheus.eventually(
        lambda: recorded('voicebus:call_outcomes:rate5m{status="completed"}'),
        timeout=120,
        what="voicebus:call_outcomes:rate5m recorded for a completed call",
    )
    assert len(completed) == 1
    (p95,) = prometheus.eventually(
        lambda: recorded('voicebus:command_duration_seconds:p95_5m{command_type="call.connect"}'),
        timeout=60,
        what="voicebus:command_duration_seconds:p95_5m recorded",
    )
    assert math.isfinite(float(p95["value"][1]))
    (answered,) = prometheus.eventually(
        lambda: recorded("voicebus:call_answered_ratio:rate5m"),
        timeout=60,
        what="voicebus:call_answered_ratio:rate5m recorded",
    )
    assert 0 < float(answered["value"][1]) <= 1
    assert prometheus.query('voicebus:commands:rate5m{command_type="call.connect"}')
    executor_group = services.stack.executor.env["EXECUTOR_GROUP_ID"]
    assert prometheus.query(f'voicebus:consumer_group_lag:max{{group="{executor_group}"}}')


def test_prometheus_loads_the_repository_rules_and_evaluates_each_without_error(
    prometheus: LivePrometheus,
) -> None:
    never = "0001-01-01T00:00:00Z"

    def all_evaluated() -> list[dict[str, Any]] | None:
        rules = prometheus.rules()
        return rules if all(rule["lastEvaluation"] != never for rule in rules) else None

    rules = prometheus.eventually(all_evaluated, timeout=75, what="every rule evaluated")
    assert {rule["name"] for rule in rules} == repository_rule_names()
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken


async def test_a_dead_letter_fires_the_dead_letters_alert(
    broker: SuiteBroker, prometheus: LivePrometheus
) -> None:
    assert alert(prometheus, "VoicebusDeadLetters", "firing") is None
    sent = time.monotonic()
    await publish(broker.bootstrap_servers, CALL_CONNECT, b"not json", key="poison")

    fired = prometheus.eventually(
        lambda: alert(prometheus, "VoicebusDeadLetters", "firing", topic=dlq(CALL_CONNECT)),
        timeout=60,
        what="VoicebusDeadLetters firing",
    )
    print(f"VoicebusDeadLetters firing {time.monotonic() - sent:.1f}s after the dead letter")
    assert fired["labels"]["severity"] == "warning"
    assert "call.connect.dlq" in fired["annotations"]["summary"]


def test_the_executor_stopped_makes_its_service_down_alert_pending(
    prometheus: LivePrometheus, services: Services
) -> None:
    """VoicebusServiceDown has ``for: 2m``: pending at once, firing two minutes later
    (promtool's alerts_test.yml covers the ``for``)."""
    assert alert(prometheus, "VoicebusServiceDown", "pending") is None
    services.stack.executor.stop()
    stopped = time.monotonic()

    pending = prometheus.eventually(
        lambda: alert(prometheus, "VoicebusServiceDown", "pending", job="voicebus-executor"),
        timeout=30,
        what="VoicebusServiceDown pending for the executor",
    )
    print(f"VoicebusServiceDown pending {time.monotonic() - stopped:.1f}s after the stop")
    assert pending["labels"]["severity"] == "critical"
    assert pending["labels"]["instance"] == f"127.0.0.1:{services.stack.executor.port}"
    down = [
        found["labels"]["job"]
        for found in prometheus.alerts()
        if found["labels"]["alertname"] == "VoicebusServiceDown"
    ]
    assert down == ["voicebus-executor"]
