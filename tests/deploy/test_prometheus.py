"""Prometheus configuration, recording rules, alerts (promtool) and every service's /metrics.

promtool comes from Debian's ``prometheus`` package: ``make test`` installs it when it is
missing (deploy/install-tools.sh, root with apt), so does a bare pytest once per session;
otherwise these tests skip and say why. test_live_prometheus.py runs Prometheus itself.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.metrics.metrics import ServiceMetrics
from tests.deploy.support import (
    GRAFANA,
    METRIC_NAME,
    PROMETHEUS,
    RECORDED_NAME,
    exported_names,
    load_yaml,
    recorded_names,
    run_promtool,
)
from tests.integration.stack import Stack, running_stack
from tests.support.services import ServiceProcess

SERVICE_PORTS = {"executor": 9101, "ingress": 8080, "metrics": 9100}


def test_promtool_check_config():
    done = run_promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_check_rules():
    done = run_promtool("check", "rules", "rules.yml", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_rules():
    done = run_promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_voicebus_service_is_scraped():
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    for service, port in SERVICE_PORTS.items():
        assert targets[f"voicebus-{service}"] == [f"{service}:{port}"]
    assert set(config["rule_files"]) == {"rules.yml", "alerts.yml"}


def test_every_alert_is_unit_tested_and_documented():
    alerts = {
        rule["alert"]
        for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"]
        for rule in group["rules"]
    }
    tests = load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert alerts == tested == fired
    readme = (PROMETHEUS.parent / "README.md").read_text(encoding="utf-8")
    for alert in alerts:
        assert f"`{alert}`" in readme, f"{alert} has no runbook in deploy/README.md"
    for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]


def _expressions() -> dict[str, str]:
    """Every PromQL expression of the rules, alerts and dashboard, by where it is."""
    found: dict[str, str] = {}
    for name in ("rules.yml", "alerts.yml"):
        for group in load_yaml(PROMETHEUS / name)["groups"]:
            for rule in group["rules"]:
                found[f"{name}:{rule.get('record') or rule.get('alert')}"] = rule["expr"]
    dashboard = json.loads((GRAFANA / "dashboards" / "voicebus.json").read_text("utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            found[f"dashboard:{panel['title']}:{target['refId']}"] = target["expr"]
    return found


def test_rules_alerts_and_dashboard_use_only_exported_metrics():
    exported = exported_names()
    recorded = recorded_names()
    unknown = {
        (where, name)
        for where, expr in _expressions().items()
        for name in METRIC_NAME.findall(expr)
        if name not in exported
    }
    assert not unknown, f"metrics no service exports: {sorted(unknown)}"
    unrecorded = {
        (where, name)
        for where, expr in _expressions().items()
        for name in RECORDED_NAME.findall(expr)
        if name not in recorded
    }
    assert not unrecorded, f"recording rules that do not exist: {sorted(unrecorded)}"


def test_metric_names_follow_conventions():
    assert all(name.startswith("voicebus_") for name in exported_names())
    registry = CollectorRegistry()
    ServiceMetrics(registry)
    for family in registry.collect():
        if family.type == "counter":
            assert not family.name.endswith("_total")  # the client adds _total itself
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:
            assert not {"call_sid", "command_id", "from", "to", "number"} & set(sample.labels)


# ------------------------------------------------------------------ live /metrics


@pytest.fixture(scope="module")
def live_services(kafka_env: dict[str, str]) -> Iterator[tuple[Stack, ServiceProcess]]:
    metrics_env = {**kafka_env, "METRICS_GROUP_ID": f"metrics-{uuid.uuid4().hex[:8]}"}
    with running_stack(kafka_env) as stack, ServiceProcess("metrics", metrics_env) as metrics:
        yield stack, metrics


@pytest.mark.integration
@pytest.mark.parametrize("service", ["executor", "ingress", "metrics"])
def test_promtool_check_metrics_on_each_service(
    live_services: tuple[Stack, ServiceProcess], service: str
):
    stack, metrics = live_services
    url = {"executor": stack.executor.url, "ingress": stack.ingress.url, "metrics": metrics.url}[
        service
    ]
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    done = run_promtool("check", "metrics", stdin=response.text)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not done.stdout.strip(), done.stdout  # no lint findings
    assert f"voicebus_{service}_" in response.text


@pytest.mark.integration
def test_the_sandbox_has_no_metrics_endpoint(live_services: tuple[Stack, ServiceProcess]):
    """The sandbox stands in for Exotel in tests and demos: it is not scraped."""
    stack, _ = live_services
    assert httpx.get(f"{stack.sandbox.base_url}/_sandbox/health", timeout=5).status_code == 200
