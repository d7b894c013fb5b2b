"""Grafana provisioning: the datasource, the dashboard provider and the dashboard."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.support import GRAFANA, load_yaml


def dashboard() -> dict[str, Any]:
    value: dict[str, Any] = json.loads((GRAFANA / "dashboards/voicebus.json").read_text("utf-8"))
    return value


def test_datasource_is_the_compose_prometheus():
    (source,) = load_yaml(GRAFANA / "provisioning/datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", ())
    }
    assert uids == {source["uid"]}


def test_dashboard_covers_calls_outcomes_latency_rate_limiting_and_lag():
    board = dashboard()
    assert board["uid"] == "voicebus-overview"
    rows = {p["title"] for p in board["panels"] if p["type"] == "row"}
    assert rows == {"Calls", "Outcomes", "Latency", "Rate limiting", "Lag and dead letters"}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(t["expr"].strip() for t in panel["targets"])
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
