"""Metrics-service settings from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.metrics.settings import MetricsSettings


def test_defaults(monkeypatch):
    for name in ("HTTP_PORT", "HTTP_HOST", "METRICS_GROUP_ID", "METRICS_LAG_GROUPS"):
        monkeypatch.delenv(name, raising=False)
    settings = MetricsSettings()
    assert settings.http_port == 9100
    assert settings.group_id == "voicebus-metrics"
    assert settings.executor_group_id == "voicebus-executor"
    assert settings.extra_lag_groups() == ["voicebus-call-watch"]


def test_environment(monkeypatch):
    monkeypatch.setenv("HTTP_PORT", "9200")
    monkeypatch.setenv("METRICS_GROUP_ID", "m2")
    monkeypatch.setenv("METRICS_LAG_GROUPS", " crm-sync, ,analytics ")
    monkeypatch.setenv("METRICS_CALL_STATE_TTL_SECONDS", "7200")
    settings = MetricsSettings()
    assert settings.http_port == 9200
    assert settings.group_id == "m2"
    assert settings.extra_lag_groups() == ["crm-sync", "analytics"]
    assert settings.limits().call_state_ttl_seconds == 7200


def test_overdue_must_come_before_forgetting(monkeypatch):
    monkeypatch.setenv("METRICS_TERMINAL_OVERDUE_SECONDS", "100")
    monkeypatch.setenv("METRICS_CALL_STATE_TTL_SECONDS", "50")
    with pytest.raises(ValidationError, match="OVERDUE"):
        MetricsSettings()
