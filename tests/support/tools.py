"""Command-line tools some tests drive: kcat, prometheus, promtool.

Each is found on PATH, or installed once per session from Debian's packages by
deploy/install-tools.sh (``make test`` runs it first; this is for a bare ``pytest``). Where
a tool truly cannot be installed (not root, no apt-get, the install failed) the test skips
and says why.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL_TOOLS = Path(__file__).resolve().parents[2] / "deploy" / "install-tools.sh"


@functools.cache
def find_tool(name: str) -> tuple[str | None, str]:
    """``name``'s path (installing it when missing and possible), else why there is none."""
    found = shutil.which(name)
    if found:
        return found, ""
    if os.environ.get("VOICEBUS_NO_TOOL_INSTALL"):
        return None, f"{name} is not installed (VOICEBUS_NO_TOOL_INSTALL is set)"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, (
            f"{name} is not installed and cannot be installed here (needs root and apt-get): "
            f"run deploy/install-tools.sh {name}"
        )
    try:
        done = subprocess.run(
            ["sh", str(INSTALL_TOOLS), name],
            check=False,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        return None, f"installing {name} (deploy/install-tools.sh) timed out"
    found = shutil.which(name)
    if done.returncode != 0 or not found:
        return None, f"installing {name} failed: {done.stderr[-500:]}"
    return found, ""


def tool(name: str) -> str:
    """``name``'s path, or skip the test saying why it cannot be had."""
    path, reason = find_tool(name)
    if path is None:
        pytest.skip(reason)
    return path
