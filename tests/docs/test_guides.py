"""docs/ stays in step with the code: metrics, alerts, settings, CLI commands, exit codes,
and links between the documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from services.cli.app import app
from services.cli.exits import Exit
from services.common.settings import KafkaSettings
from services.executor.metrics import ExecutorMetrics
from services.executor.settings import ExecutorSettings
from services.exotel.accounts import ExotelSettings
from services.ingress.metrics import IngressMetrics
from services.ingress.settings import IngressSettings
from services.metrics.metrics import FactMetrics, LagMetrics, ServiceMetrics
from services.metrics.settings import MetricsSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def metric_names() -> set[str]:
    names = set()
    for metrics in (ExecutorMetrics, IngressMetrics, FactMetrics, LagMetrics, ServiceMetrics):
        registry = CollectorRegistry()
        metrics(registry)
        names |= {family.name for family in registry.collect()}
    return names


def test_every_metric_is_in_the_sre_guide() -> None:
    guide = text("guides/sre.md")
    missing = sorted(name for name in metric_names() if f"`{name}" not in guide)
    assert not missing, f"docs/guides/sre.md does not describe {missing}"


def test_every_alert_has_a_runbook() -> None:
    if not ALERTS.exists():
        pytest.skip("deploy/prometheus/alerts.yml not there yet")
    alerts = re.findall(r"^\s*-\s*alert:\s*(\S+)", ALERTS.read_text(), flags=re.MULTILINE)
    assert alerts
    guide = text("guides/sre.md")
    missing = [a for a in alerts if f"### {a}\n" not in guide]
    assert not missing, f"docs/guides/sre.md has no runbook for {missing}"


def environment_names(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            continue  # nested settings (KAFKA_*, EXOTEL_*) are checked on their own
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.add(str(alias.choices[0]))
        else:
            names.add(f"{prefix}{name}".upper())
    return names


@pytest.mark.parametrize(
    "settings",
    [KafkaSettings, ExotelSettings, ExecutorSettings, IngressSettings, MetricsSettings],
)
def test_every_setting_is_in_the_operator_guide(settings: type[BaseSettings]) -> None:
    guide = text("guides/operator.md")
    missing = sorted(n for n in environment_names(settings) if f"`{n}`" not in guide)
    assert not missing, f"docs/guides/operator.md does not document {missing}"


def test_cli_guide_covers_every_command_and_exit_code() -> None:
    guide = text("cli.md")
    commands = [
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    ]
    groups = [g.name for g in app.registered_groups]
    for name in (*commands, *groups):
        assert f"`voicebus {name}" in guide, name
    for code in Exit:
        assert f"| `{int(code)}` |" in guide, code


def test_relative_links_resolve() -> None:
    broken = []
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
