"""Where Kafka is: ``--bootstrap``, else ``KAFKA_BOOTSTRAP_SERVERS``, else ``.run/stack.env``."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from services.common.settings import KafkaSettings

STACK_ENV = Path(".run/stack.env")


class ConfigError(Exception):
    """No broker named, or ``KAFKA_*`` variables that do not validate."""


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def kafka_settings(bootstrap: str | None, *, stack_env: Path = STACK_ENV) -> KafkaSettings:
    """Settings for the CLI.

    ``bootstrap`` comes from ``--bootstrap`` or ``KAFKA_BOOTSTRAP_SERVERS`` (typer reads the
    variable); without either, the file ``make run`` writes. The idempotent producer stays
    off unless ``KAFKA_ENABLE_IDEMPOTENCE`` says otherwise: one command at a time gains
    nothing from it and the embedded broker refuses it.
    """
    file_values = read_env_file(stack_env) if stack_env.exists() else {}
    servers = bootstrap or file_values.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        raise ConfigError(
            "no Kafka named: pass --bootstrap HOST:PORT, set KAFKA_BOOTSTRAP_SERVERS, "
            "or start the stack with `make run` (it writes .run/stack.env)"
        )
    idempotence = os.environ.get("KAFKA_ENABLE_IDEMPOTENCE") or file_values.get(
        "KAFKA_ENABLE_IDEMPOTENCE", "false"
    )
    try:
        return KafkaSettings(
            bootstrap_servers=servers,
            enable_idempotence=idempotence.strip().lower() in ("1", "true", "yes", "on"),
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid KAFKA_* setting: {exc}") from exc
