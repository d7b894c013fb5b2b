"""Shared helpers of the deploy tests: paths, YAML, promtool, metric names, a scrape config."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.support.tools import tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
K8S = DEPLOY / "k8s"
DATA = Path(__file__).resolve().parent / "data"


def yaml_module() -> Any:
    """PyYAML, or skip (it is a dev dependency; the module is typed loosely on purpose)."""
    return pytest.importorskip("yaml", reason="PyYAML is needed to read the deploy files")


def load_yaml(path: Path) -> Any:
    return yaml_module().safe_load(path.read_text(encoding="utf-8"))


def load_yaml_all(path: Path) -> list[Any]:
    return [d for d in yaml_module().safe_load_all(path.read_text(encoding="utf-8")) if d]


def promtool() -> str:
    return tool("promtool")


def run_promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROMETHEUS,
    )


METRIC_NAME = re.compile(r"\bvoicebus_[a-z0-9_]+")
RECORDED_NAME = re.compile(r"\bvoicebus:[a-z0-9_:]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def exported_names() -> set[str]:
    """Every sample name the executor, ingress and metrics service can expose."""
    from services.executor.metrics import ExecutorMetrics
    from services.ingress.metrics import IngressMetrics
    from services.metrics.metrics import ServiceMetrics

    names: set[str] = set()
    for build in (ExecutorMetrics, IngressMetrics, ServiceMetrics):
        registry = CollectorRegistry()
        build(registry)
        for family in registry.collect():
            names.add(family.name)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def recorded_names() -> set[str]:
    rules = load_yaml(PROMETHEUS / "rules.yml")
    return {rule["record"] for group in rules["groups"] for rule in group["rules"]}


def scrape_config_for(targets: Mapping[str, str], *, interval: str = "1s") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml for a test: each job scrapes ``targets[job_name]``
    instead of its compose host name, every ``interval``; the repository's rule files are
    read where they are, unchanged (a group's own ``interval:`` still applies)."""
    config: dict[str, Any] = load_yaml(PROMETHEUS / "prometheus.yml")
    config["global"] |= {
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "evaluation_interval": interval,
    }
    config["rule_files"] = [str(PROMETHEUS / name) for name in config["rule_files"]]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(targets), f"prometheus.yml scrapes {sorted(jobs)}, not {sorted(targets)}"
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [targets[job["job_name"]]]
    return config
