"""IngressSettings: required token, environment names, defaults, errors that leak nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.callback_signature import CallbackSigner
from services.ingress.settings import IngressSettings, describe_errors

TOKEN = "tok-0123456789abcdef"
SECRET = "signing-secret-0123456789abcdef-0123"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CALLBACK_TOKEN",
        "CALLBACK_TOKEN_PREVIOUS",
        "CALLBACK_SIGNING_SECRET_PREVIOUS",
        "INGRESS_SPOOL_DIR",
        "INGRESS_SPOOL_AFTER_SECONDS",
        "INGRESS_SPOOL_SEGMENT_BYTES",
        "HTTP_HOST",
        "HTTP_PORT",
        "INGRESS_MAX_BODY_BYTES",
        "INGRESS_PUBLISH_TIMEOUT_SECONDS",
        "EXOTEL_TIMEZONE",
        "INGRESS_KAFKA_LINGER_MS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", SECRET)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_TOKEN", TOKEN)
    settings = IngressSettings()
    assert settings.callback_token.get_secret_value() == TOKEN
    assert settings.previous_callback_token is None
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.max_body_bytes == 65_536
    assert settings.publish_timeout_seconds == 5.0
    assert settings.exotel_timezone == "Asia/Kolkata"
    assert settings.accepted_tokens() == (TOKEN.encode(),)
    assert settings.spool_dir == Path(".run/ingress-spool")
    assert settings.spool_after_seconds == 2.0
    assert settings.kafka_linger_ms == 2
    assert settings.previous_callback_signing_secret is None
    assert settings.signer().verify({}, settings.signer().sign({}))
    assert sorted(settings.secrets()) == sorted([TOKEN, SECRET])
    assert TOKEN not in repr(settings)
    assert SECRET not in repr(settings)


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "CALLBACK_TOKEN": TOKEN,
        "CALLBACK_TOKEN_PREVIOUS": "previous-token-0123456789",
        "HTTP_HOST": "0.0.0.0",
        "HTTP_PORT": "18080",
        "INGRESS_MAX_BODY_BYTES": "4096",
        "INGRESS_PUBLISH_TIMEOUT_SECONDS": "2.5",
        "INGRESS_SPOOL_DIR": "/var/spool/voicebus",
        "INGRESS_SPOOL_AFTER_SECONDS": "1.5",
        "INGRESS_SPOOL_SEGMENT_BYTES": "65536",
        "CALLBACK_SIGNING_SECRET_PREVIOUS": "previous-signing-secret-0123456789abc",
        "EXOTEL_TIMEZONE": "UTC",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = IngressSettings()
    assert settings.accepted_tokens() == (TOKEN.encode(), b"previous-token-0123456789")
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 18080)
    assert (settings.max_body_bytes, settings.publish_timeout_seconds) == (4096, 2.5)
    assert str(settings.tz) == "UTC"
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert (settings.spool_dir, settings.spool_after_seconds) == (Path("/var/spool/voicebus"), 1.5)
    assert settings.spool_segment_bytes == 65_536
    previous = settings.previous_callback_signing_secret
    assert previous is not None
    assert settings.signer().verify({}, CallbackSigner(previous.get_secret_value()).sign({}))


def test_empty_previous_token_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_TOKEN", TOKEN)
    monkeypatch.setenv("CALLBACK_TOKEN_PREVIOUS", "")
    assert IngressSettings().previous_callback_token is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "CALLBACK_TOKEN: is required"),
        ({"CALLBACK_TOKEN": "short-secret"}, "CALLBACK_TOKEN: must be at least 16"),
        ({"CALLBACK_TOKEN": "has/slash/in/it/0123"}, "CALLBACK_TOKEN: may only contain"),
        (
            {"CALLBACK_TOKEN": TOKEN, "CALLBACK_TOKEN_PREVIOUS": "tiny-secret"},
            "CALLBACK_TOKEN_PREVIOUS: must be at least 16",
        ),
        ({"CALLBACK_TOKEN": TOKEN, "EXOTEL_TIMEZONE": "Mars/Olympus"}, "EXOTEL_TIMEZONE"),
        ({"CALLBACK_TOKEN": TOKEN, "INGRESS_PUBLISH_TIMEOUT_SECONDS": "20"}, "INGRESS_PUBLISH"),
        (
            {"CALLBACK_TOKEN": TOKEN, "CALLBACK_SIGNING_SECRET": ""},
            "CALLBACK_SIGNING_SECRET: must be at least 32",
        ),
        (
            {"CALLBACK_TOKEN": TOKEN, "CALLBACK_SIGNING_SECRET": "short-signing-secret"},
            "CALLBACK_SIGNING_SECRET: must be at least 32",
        ),
        (
            {"CALLBACK_TOKEN": TOKEN, "CALLBACK_SIGNING_SECRET_PREVIOUS": "tiny-secret"},
            "CALLBACK_SIGNING_SECRET_PREVIOUS: must be at least 32",
        ),
        (
            {"CALLBACK_TOKEN": TOKEN, "INGRESS_SPOOL_AFTER_SECONDS": "5"},
            "INGRESS_SPOOL_AFTER_SECONDS must be below",
        ),
        ({"CALLBACK_TOKEN": TOKEN, "INGRESS_KAFKA_LINGER_MS": "101"}, "INGRESS_KAFKA_LINGER_MS"),
        ({"CALLBACK_TOKEN": TOKEN, "INGRESS_KAFKA_LINGER_MS": "-1"}, "INGRESS_KAFKA_LINGER_MS"),
    ],
)
def test_invalid_settings_are_explained_without_values(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        IngressSettings()
    message = describe_errors(caught.value)
    assert expected in message
    for secret in ("short-secret", "tiny-secret", "has/slash", "short-signing-secret"):
        assert secret not in message


def test_entry_point_refuses_to_start_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACK_TOKEN")}
    env["CALLBACK_TOKEN"] = "too-short-secret"[:12]
    done = subprocess.run(
        [sys.executable, "-m", "services.ingress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 2
    assert "CALLBACK_TOKEN: must be at least 16 characters" in output
    assert env["CALLBACK_TOKEN"] not in output


def test_missing_signing_secret_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_TOKEN", TOKEN)
    monkeypatch.delenv("CALLBACK_SIGNING_SECRET")
    with pytest.raises(ValidationError) as caught:
        IngressSettings()
    assert "CALLBACK_SIGNING_SECRET: is required (at least 32 characters)" in describe_errors(
        caught.value
    )
