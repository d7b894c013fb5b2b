"""docs/architecture.md names modules that exist, and the repository stands on its own:
nothing refers to documents outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from contracts.catalog import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
#: a repository path in backticks, e.g. `services/executor/commands/{connect,lwb}.py`
PATH = re.compile(r"`((?:services|contracts|tests|docs)/[\w/{},.*<>-]+)`")


def expand(path: str) -> list[str]:
    """`a/{b,c}.py` -> a/b.py, a/c.py (the document's shorthand)."""
    match = re.search(r"\{([^}]*)\}", path)
    if match is None:
        return [path]
    head, tail = path[: match.start()], path[match.end() :]
    return [p for part in match.group(1).split(",") for p in expand(head + part + tail)]


def test_every_module_the_architecture_names_exists() -> None:
    named = [p for raw in PATH.findall(ARCHITECTURE) for p in expand(raw) if "<" not in p]
    assert len(named) > 30
    missing = [p for p in named if not list(ROOT.glob(p.rstrip("/")))]
    assert missing == []


def test_the_flow_of_one_command_goes_through_modules_that_exist() -> None:
    flow = ARCHITECTURE.split("## One command through the code", 1)[1].split("##", 1)[0]
    modules = re.findall(r"\b((?:executor|exotel|ingress|contracts)/[\w/]+(?:\.py)?)", flow)
    assert len(modules) > 20
    for module in modules:
        path = module if module.startswith("contracts/") else f"services/{module}"
        if not path.endswith(".py"):
            path += ".py"
        assert (ROOT / path).is_file(), module


def test_the_architecture_names_every_command_topic() -> None:
    for spec in COMMANDS:
        assert f"`{spec.topic}`" in ARCHITECTURE
        assert spec.result_topic in ARCHITECTURE


def test_nothing_in_the_repository_refers_to_documents_outside_it() -> None:
    outside = ("../" + "shared", "/work/" + "shared")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    offending = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in (".png", ".jar"):
            continue
        body = path.read_text(encoding="utf-8", errors="replace")
        offending += [f"{name}: {ref}" for ref in outside if ref in body]
    assert offending == []
