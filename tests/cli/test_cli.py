"""The ``voicebus`` command without a broker: validation, usage errors and exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.cli.app import apply_fields, parse_since, parse_value
from services.cli.config import ConfigError, kafka_settings
from services.cli.exits import Exit
from services.common.processes import free_port
from tests.cli.helpers import invoke

CONNECT = {"from": "+919876543210", "to": "+919812345678", "caller_id": "08047112345"}


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str | None]:
    """A bootstrap address where nothing listens, and no .run/stack.env to fall back on."""
    monkeypatch.chdir(tmp_path)
    return {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}


@pytest.fixture
def unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str | None]:
    monkeypatch.chdir(tmp_path)
    return {"KAFKA_BOOTSTRAP_SERVERS": None}


def connect_args(**fields: str) -> list[str]:
    merged = {**CONNECT, **fields}
    return [arg for name, value in merged.items() for arg in ("-F", f"{name}={value}")]


def test_help_documents_the_exit_codes() -> None:
    result = invoke(["--help"])
    assert result.exit_code == 0
    for text in ("0 accepted", "2 usage or validation error", "3 timeout", "4 Kafka unreachable"):
        assert text in " ".join(result.output.split())


def test_send_help_lists_each_commands_fields() -> None:
    result = invoke(["send", "--help"])
    assert result.exit_code == 0
    assert "call.connect: command_id, account, from, to" in result.output
    assert "leg.hangup: command_id, account, call_sid, leg_sid, leg" in result.output


def test_invalid_field_is_refused_before_publishing(nowhere: dict[str, str | None]) -> None:
    # Kafka is unreachable: exit 2 (not 4) proves nothing was even attempted.
    result = invoke(["send", "call.connect", *connect_args(recording_channels="quad")], env=nowhere)
    assert result.exit_code == Exit.USAGE
    assert "invalid field 'recording_channels'" in result.stderr
    assert result.stdout == ""


def test_missing_required_field_is_named(nowhere: dict[str, str | None]) -> None:
    result = invoke(
        ["send", "lwb.action", "-F", "call_sid=abc", "-F", "action=listen"], env=nowhere
    )
    assert result.exit_code == Exit.USAGE
    assert "'supervisor'" in result.stderr


def test_model_rules_apply_too(nowhere: dict[str, str | None]) -> None:
    result = invoke(["send", "leg.hangup", "-F", "call_sid=abc"], env=nowhere)
    assert result.exit_code == Exit.USAGE
    assert "exactly one of 'leg_sid' or 'leg'" in result.stderr


def test_unknown_field_is_refused(nowhere: dict[str, str | None]) -> None:
    result = invoke(["send", "call.connect", *connect_args(colour="blue")], env=nowhere)
    assert result.exit_code == Exit.USAGE
    assert "colour" in result.stderr


def test_unusable_command_id_is_refused(nowhere: dict[str, str | None]) -> None:
    result = invoke(
        ["send", "call.connect", "--command-id", "x" * 129, *connect_args()], env=nowhere
    )
    assert result.exit_code == Exit.USAGE
    assert "command_id" in result.stderr


def test_file_that_is_not_json(nowhere: dict[str, str | None], tmp_path: Path) -> None:
    bad = tmp_path / "command.json"
    bad.write_text("{nope")
    result = invoke(["send", "call.connect", "-f", str(bad)], env=nowhere)
    assert result.exit_code == Exit.USAGE
    assert "is not JSON" in result.stderr


def test_file_that_is_not_an_object(nowhere: dict[str, str | None]) -> None:
    result = invoke(["send", "call.connect", "-f", "-"], env=nowhere, stdin="[1, 2]")
    assert result.exit_code == Exit.USAGE
    assert "JSON object was expected" in result.stderr


def test_missing_file(nowhere: dict[str, str | None]) -> None:
    result = invoke(["send", "call.connect", "-f", "no-such.json"], env=nowhere)
    assert result.exit_code == Exit.USAGE
    assert "cannot read no-such.json" in result.stderr


def test_malformed_field_flag(nowhere: dict[str, str | None]) -> None:
    result = invoke(["send", "call.connect", "-F", "from"], env=nowhere)
    assert result.exit_code == Exit.USAGE
    assert "expected NAME=VALUE" in result.stderr


def test_unknown_command_type_is_a_usage_error(nowhere: dict[str, str | None]) -> None:
    result = invoke(["send", "call.teleport", *connect_args()], env=nowhere)
    assert result.exit_code == Exit.USAGE


def test_valid_command_with_kafka_unreachable_exits_4(nowhere: dict[str, str | None]) -> None:
    result = invoke(["send", "call.connect", *connect_args(), "--timeout", "2"], env=nowhere)
    assert result.exit_code == Exit.KAFKA_UNAVAILABLE, result.output
    assert "Kafka unreachable at 127.0.0.1:" in result.stderr


def test_file_and_flags_combine_flags_win(nowhere: dict[str, str | None], tmp_path: Path) -> None:
    path = tmp_path / "command.json"
    path.write_text(json.dumps({**CONNECT, "command_id": "from-file", "time_out": "nope"}))
    result = invoke(["send", "call.connect", "-f", str(path), "-F", "time_out=30"], env=nowhere)
    assert result.exit_code == Exit.KAFKA_UNAVAILABLE  # valid: it got as far as Kafka


def test_no_broker_named_is_a_usage_error(unset: dict[str, str | None]) -> None:
    result = invoke(["send", "call.connect", *connect_args()], env=unset)
    assert result.exit_code == Exit.USAGE
    assert "make run" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["tail", "--no-follow"],
        ["topics", "--check"],
        ["dlq", "list"],
        ["dlq", "republish", "call.connect.dlq:0:0"],
    ],
)
def test_every_command_exits_4_when_kafka_is_unreachable(
    nowhere: dict[str, str | None], args: list[str]
) -> None:
    result = invoke(args, env=nowhere)
    assert result.exit_code == Exit.KAFKA_UNAVAILABLE, result.output
    assert "Kafka unreachable" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tail", "--topic", "nope"], "unknown topic"),
        (["tail", "--since", "yesterday-ish"], "--since"),
        (["dlq", "list", "--topic", "nope"], "no dead-letter topic"),
        (["dlq", "republish", "call.connect.dlq:zero:1"], "TOPIC:PARTITION:OFFSET"),
        (["dlq", "republish", "call.connect:0:1"], "not a dead-letter topic"),
        (["dlq", "republish", "call.status.dlq:0:1"], "raw Exotel callbacks"),
        (["send", "call.connect", "-H", "traceparent"], "expected NAME=VALUE"),
    ],
)
def test_usage_errors_exit_2(nowhere: dict[str, str | None], args: list[str], message: str) -> None:
    result = invoke(args, env=nowhere)
    assert result.exit_code == Exit.USAGE
    assert message in result.stderr


def test_value_file_takes_one_entry(nowhere: dict[str, str | None], tmp_path: Path) -> None:
    fixed = tmp_path / "fixed.json"
    fixed.write_text("{}")
    result = invoke(
        [
            "dlq",
            "republish",
            "call.connect.dlq:0:1",
            "call.connect.dlq:0:2",
            "--value-file",
            str(fixed),
        ],
        env=nowhere,
    )
    assert result.exit_code == Exit.USAGE
    assert "one entry at a time" in result.stderr


def test_asyncapi_check_passes_on_the_checked_in_document() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
    result = invoke(["asyncapi", "--check", str(doc)])
    assert result.exit_code == Exit.OK, result.output


def test_asyncapi_check_fails_on_a_stale_copy(tmp_path: Path) -> None:
    stale = tmp_path / "asyncapi.json"
    stale.write_text("{}\n")
    result = invoke(["asyncapi", "--check", str(stale)])
    assert result.exit_code == Exit.FAILED
    assert "drifts" in result.stderr


def test_asyncapi_prints_the_document() -> None:
    result = invoke(["asyncapi"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["asyncapi"] == "3.0.0"


# ── pure helpers ─────────────────────────────────────────────────────────────────────────


def test_field_values_stay_strings_unless_json_structures() -> None:
    assert parse_value("+919876543210") == "+919876543210"
    assert parse_value("08047112345") == "08047112345"
    assert parse_value("30") == "30"  # converted by validation where a number is expected
    assert parse_value('["answered"]') == ["answered"]
    assert parse_value('{"url": "wss://x"}') == {"url": "wss://x"}
    assert parse_value("null") is None
    assert parse_value("[not json") == "[not json"


def test_dotted_fields_build_nested_objects() -> None:
    data = apply_fields({"streaming": {"begin": "to_leg_connect"}}, ["streaming.url=wss://a/b=c"])
    assert data == {"streaming": {"begin": "to_leg_connect", "url": "wss://a/b=c"}}


def test_since() -> None:
    assert parse_since("earliest") is None
    now = datetime.now(UTC)
    assert abs(parse_since("now") - now) < timedelta(seconds=5)  # type: ignore[operator]
    assert abs(parse_since("15m") - (now - timedelta(minutes=15))) < timedelta(seconds=5)  # type: ignore[operator]
    assert parse_since("2024-05-01T10:00:00+05:30") == datetime.fromisoformat(
        "2024-05-01T10:00:00+05:30"
    )
    assert parse_since("2024-05-01T10:00:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_bootstrap_from_flag_env_or_stack_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_ENABLE_IDEMPOTENCE", raising=False)
    stack_env = tmp_path / "stack.env"
    with pytest.raises(ConfigError, match="make run"):
        kafka_settings(None, stack_env=stack_env)
    stack_env.write_text("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092\n")
    from_file = kafka_settings(None, stack_env=stack_env)
    assert from_file.bootstrap_servers == "127.0.0.1:19092"
    assert from_file.enable_idempotence is False  # the embedded broker refuses it
    assert kafka_settings("kafka:9092", stack_env=stack_env).bootstrap_servers == "kafka:9092"
    monkeypatch.setenv("KAFKA_ENABLE_IDEMPOTENCE", "true")
    assert kafka_settings("kafka:9092", stack_env=stack_env).enable_idempotence is True


# ------------------------------------------------------------------ passthru-url

PASSTHRU_ENV = {
    "CALLBACK_TOKEN": "cli-token-0123456789abcdef",
    "CALLBACK_SIGNING_SECRET": "cli-signing-secret-0123456789abcdef0123",
    "CALLBACK_PUBLIC_URL": "https://hooks.example.com",
}


def test_passthru_url_prints_the_signed_url_the_ingress_accepts() -> None:
    from services.common.callback_signature import CallbackSigner

    result = invoke(["passthru-url", "--account", "sales"], env=PASSTHRU_ENV)
    assert result.exit_code == Exit.OK, result.output
    url = result.stdout.strip()
    assert url.startswith(
        "https://hooks.example.com/exotel/passthru/cli-token-0123456789abcdef?account=sales&sig="
    )
    sig = url.rsplit("sig=", 1)[1]
    assert CallbackSigner(PASSTHRU_ENV["CALLBACK_SIGNING_SECRET"]).verify({"account": "sales"}, sig)
    assert "Passthru applet" in result.stderr
    assert PASSTHRU_ENV["CALLBACK_SIGNING_SECRET"] not in result.output


def test_passthru_url_defaults_to_the_default_account_and_public_url() -> None:
    env = PASSTHRU_ENV | {"CALLBACK_PUBLIC_URL": None}
    result = invoke(["passthru-url"], env=env)
    assert result.exit_code == Exit.OK, result.output
    assert result.stdout.startswith("http://127.0.0.1:8080/exotel/passthru/")
    assert "account=default" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["passthru-url"], {"CALLBACK_TOKEN": None}, "CALLBACK_TOKEN"),
        (["passthru-url"], {"CALLBACK_SIGNING_SECRET": "short"}, "CALLBACK_SIGNING_SECRET"),
        (["passthru-url", "--account", "a b"], {}, "--account"),
        (["passthru-url", "--public-url", "ftp://x"], {}, "--public-url"),
        (["passthru-url", "--public-url", "https://x/?a=1"], {}, "--public-url"),
    ],
)
def test_passthru_url_refuses_what_the_ingress_would_not_accept(
    args: list[str], env: dict[str, str | None], message: str
) -> None:
    result = invoke(args, env=PASSTHRU_ENV | env)
    assert result.exit_code == Exit.USAGE
    assert message in result.stderr
    assert result.stdout == ""
    assert "short" not in result.stderr, "never the value"
