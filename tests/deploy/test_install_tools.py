"""deploy/install-tools.sh, which ``make test`` runs: finds the tests' tools, installs only
what is missing, and names what it cannot install."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import INSTALL_TOOLS

TOOLS = ("kcat", "prometheus", "promtool", "wrk")


def install(*tools: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path} if path is not None else None
    return subprocess.run(
        ["/bin/sh", str(INSTALL_TOOLS), *tools],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_tools_already_installed_are_found_and_nothing_is_installed() -> None:
    present = [tool for tool in TOOLS if shutil.which(tool)]
    if not present:
        pytest.skip("none of kcat, prometheus, promtool is installed here")
    done = install(*present)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [shutil.which(tool) for tool in present]
    assert "installing" not in done.stderr


def test_a_missing_tool_that_cannot_be_installed_is_named(tmp_path: Path) -> None:
    """No apt-get on PATH (and no kcat): the script says what is missing and fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    identity = shutil.which("id")
    assert identity
    (bin_dir / "id").symlink_to(identity)
    done = install("kcat", path=str(bin_dir))
    assert done.returncode == 1
    assert "kcat missing" in done.stderr
    assert "apt-get" in done.stderr


def test_an_unknown_tool_is_refused() -> None:
    done = install("kubectl")
    assert done.returncode == 2
    assert "unknown tool 'kubectl'" in done.stderr
