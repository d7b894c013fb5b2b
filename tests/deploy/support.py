"""Shared helpers of the deploy tests: paths, YAML, promtool, metric-name extraction."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
K8S = DEPLOY / "k8s"
DATA = Path(__file__).resolve().parent / "data"
INSTALL_PROMTOOL = DEPLOY / "install-promtool.sh"


def yaml_module() -> Any:
    """PyYAML, or skip (it is a dev dependency; the module is typed loosely on purpose)."""
    return pytest.importorskip("yaml", reason="PyYAML is needed to read the deploy files")


def load_yaml(path: Path) -> Any:
    return yaml_module().safe_load(path.read_text(encoding="utf-8"))


def load_yaml_all(path: Path) -> list[Any]:
    return [d for d in yaml_module().safe_load_all(path.read_text(encoding="utf-8")) if d]


@cache
def _promtool() -> tuple[str | None, str]:
    """promtool's path, installing Debian's package once when missing (root + apt only)."""
    found = shutil.which("promtool")
    if found:
        return found, ""
    if os.environ.get("VOICEBUS_NO_PROMTOOL_INSTALL"):
        return None, "promtool is not installed (VOICEBUS_NO_PROMTOOL_INSTALL is set)"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, (
            "promtool is not installed and cannot be installed here (needs root and apt-get): "
            "run deploy/install-promtool.sh or apt-get install prometheus"
        )
    try:
        done = subprocess.run(
            ["sh", str(INSTALL_PROMTOOL)], check=False, capture_output=True, text=True, timeout=900
        )
    except subprocess.TimeoutExpired:
        return None, "installing promtool (apt-get install prometheus) timed out"
    found = shutil.which("promtool")
    if done.returncode != 0 or not found:
        return None, f"installing promtool failed: {done.stderr[-500:]}"
    return found, ""


def promtool() -> str:
    path, reason = _promtool()
    if path is None:
        pytest.skip(reason)
    return path


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
