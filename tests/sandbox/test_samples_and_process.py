"""Recorded payload samples keep their shape; settings and process behaviour."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.sandbox.settings import SandboxSettings
from services.sandbox.testing import CallbackReceiver, SandboxServer
from tests.sandbox.helpers import Paths, connect_form

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "sandbox"


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def test_v1_callbacks_keep_the_keys_of_the_recorded_samples(
    exotel: httpx.Client, paths: Paths, receiver: CallbackReceiver
) -> None:
    form = _sample("v1_connect_request.form.json") | {"StatusCallback": receiver.url("/shape")}
    sid = exotel.post(f"{paths.v1}/connect.json", data=form).json()["Call"]["Sid"]
    answered, _, terminal = receiver.wait_for(
        lambda item: item.path == "/shape" and (item.form or {}).get("CallSid") == sid, count=3
    )

    assert set(answered.form or {}) == set(_sample("v1_answered_callback.multipart.json"))
    assert set(terminal.form or {}) == set(_sample("v1_terminal_callback.multipart.json"))


def test_settings_honour_http_host_and_port_and_hide_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("HTTP_PORT", "9999")
    monkeypatch.setenv("SANDBOX_RING_SECONDS", "0.01")
    monkeypatch.setenv("SANDBOX_EXTRA_ACCOUNTS", "acme:k2:t2")

    settings = SandboxSettings()

    assert (settings.host, settings.port, settings.ring_seconds) == ("0.0.0.0", 9999, 0.01)
    assert settings.accounts()["acme"] == ("k2", "t2")
    assert "sandbox-token" not in repr(settings)


def test_the_server_stops_cleanly_on_sigterm() -> None:
    server = SandboxServer(api_token="another-secret", extra_accounts="acme:k2:t2")
    with server:
        answer = httpx.post(
            f"{server.base_url}/v1/Accounts/acme/Calls/connect.json",
            data=connect_form(),
            auth=("k2", "t2"),
        )
        own = httpx.get(f"{server.base_url}/_sandbox/health", timeout=5)
        logs = server.logs()

    assert answer.status_code == 200
    assert own.status_code == 200
    assert server.api_token == "another-secret"
    assert "another-secret" not in logs
    assert server.stop() is None  # already stopped: idempotent
    assert server.last_exit_code == 0
