"""The ingress's configuration: environment variables only (README, "Configuration")."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.callback_signature import MIN_SECRET_LENGTH, CallbackSigner, check_secret
from services.common.settings import KafkaSettings

MIN_TOKEN_LENGTH = 16
# RFC 3986 "unreserved" characters: the token is a URL path segment and must survive as is.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")


def _check_token(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    secret = value.get_secret_value()
    if len(secret) < MIN_TOKEN_LENGTH:
        # Never echo the value: it is a secret even when it is too short to be a good one.
        raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters long")
    if not _TOKEN_CHARS.fullmatch(secret):
        raise ValueError("may only contain letters, digits and . _ ~ -")
    return value


class IngressSettings(BaseSettings):
    """``CALLBACK_TOKEN``, ``HTTP_*``, ``INGRESS_*``, ``EXOTEL_TIMEZONE`` and ``KAFKA_*``.

    The token and the signing secret guard both endpoints: the status callbacks'
    (``/exotel/callbacks/{token}``) and call flows' Passthru (``/exotel/passthru/{token}``).
    """

    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    callback_token: SecretStr = Field(
        validation_alias="CALLBACK_TOKEN",
        description="Secret path token of /exotel/callbacks/{token} and "
        "/exotel/passthru/{token} (at least 16 characters).",
    )
    previous_callback_token: SecretStr | None = Field(
        default=None,
        validation_alias="CALLBACK_TOKEN_PREVIOUS",
        description="The token before the last rotation, still accepted while Exotel drains.",
    )
    callback_signing_secret: SecretStr = Field(
        validation_alias="CALLBACK_SIGNING_SECRET",
        description="HMAC key of the correlation parameters (sig) the executor signs.",
    )
    previous_callback_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias="CALLBACK_SIGNING_SECRET_PREVIOUS",
        description="The signing secret before the last rotation, still accepted.",
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="HTTP_HOST")
    http_port: int = Field(default=8080, ge=0, le=65_535, validation_alias="HTTP_PORT")
    max_body_bytes: int = Field(
        default=65_536, ge=1_024, le=16 * 1024 * 1024, validation_alias="INGRESS_MAX_BODY_BYTES"
    )
    publish_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=14.0,
        validation_alias="INGRESS_PUBLISH_TIMEOUT_SECONDS",
        description="How long a callback waits for Kafka's ack (Exotel waits 15 s for a 200).",
    )
    passthru_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=14.0,
        validation_alias="INGRESS_PASSTHRU_TIMEOUT_SECONDS",
        description="How long a Passthru request waits for its fact to be durable (a sync "
        "Passthru holds the caller until it is answered).",
    )
    passthru_spool_after_seconds: float = Field(
        default=0.5,
        gt=0,
        le=10.0,
        validation_alias="INGRESS_PASSTHRU_SPOOL_AFTER_SECONDS",
        description="How long a Passthru's fact waits for Kafka before it is spooled instead.",
    )
    spool_dir: Path = Field(
        default=Path(".run/ingress-spool"),
        validation_alias="INGRESS_SPOOL_DIR",
        description="Where callbacks Kafka could not take in time are kept (fsync'd).",
    )
    spool_after_seconds: float = Field(
        default=2.0,
        gt=0,
        le=10.0,
        validation_alias="INGRESS_SPOOL_AFTER_SECONDS",
        description="How long a callback waits for Kafka before it is spooled instead.",
    )
    spool_segment_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=4_096,
        validation_alias="INGRESS_SPOOL_SEGMENT_BYTES",
        description="A spool segment is closed (and deleted once replayed) past this size.",
    )
    kafka_linger_ms: int = Field(
        default=2,
        ge=0,
        le=100,
        validation_alias="INGRESS_KAFKA_LINGER_MS",
        description="How long the producer holds a record batch open for more records "
        "(adds at most this to each callback's answer; callbacks arriving meanwhile share "
        "one produce request).",
    )
    exotel_timezone: str = Field(
        default="Asia/Kolkata",
        validation_alias="EXOTEL_TIMEZONE",
        description="Zone of the naive 'YYYY-MM-DD HH:mm:ss' times in v1 and LWB callbacks.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    @field_validator("callback_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        _check_token(value)
        return value

    @field_validator("previous_callback_token", mode="before")
    @classmethod
    def _empty_previous_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("previous_callback_token")
    @classmethod
    def _previous_token(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_token(value)

    @field_validator("previous_callback_signing_secret", mode="before")
    @classmethod
    def _empty_previous_secret_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("callback_signing_secret", "previous_callback_signing_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value())
        return value

    @field_validator("exotel_timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a known IANA time zone") from exc
        return value

    @model_validator(mode="after")
    def _spool_before_timeout(self) -> IngressSettings:
        if self.spool_after_seconds >= self.publish_timeout_seconds:
            raise ValueError(
                "INGRESS_SPOOL_AFTER_SECONDS must be below INGRESS_PUBLISH_TIMEOUT_SECONDS "
                "(the spool write must fit in the answer's deadline)"
            )
        if self.passthru_spool_after_seconds >= self.passthru_timeout_seconds:
            raise ValueError(
                "INGRESS_PASSTHRU_SPOOL_AFTER_SECONDS must be below "
                "INGRESS_PASSTHRU_TIMEOUT_SECONDS (the spool write must fit in the answer's "
                "deadline)"
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.exotel_timezone)

    def accepted_tokens(self) -> tuple[bytes, ...]:
        """The tokens a callback path may carry, as bytes for ``hmac.compare_digest``."""
        tokens = [self.callback_token, self.previous_callback_token]
        return tuple(t.get_secret_value().encode() for t in tokens if t is not None)

    def signer(self) -> CallbackSigner:
        """Verifies ``sig`` under the current and the previous signing secret."""
        previous = self.previous_callback_signing_secret
        return CallbackSigner(
            self.callback_signing_secret.get_secret_value(),
            previous.get_secret_value() if previous is not None else None,
        )

    def secrets(self) -> list[str]:
        """Values that must never be logged."""
        signing = [self.callback_signing_secret, self.previous_callback_signing_secret]
        return [t.decode() for t in self.accepted_tokens()] + [
            s.get_secret_value() for s in signing if s is not None
        ]


_ENV_NAMES = {
    "callback_token": "CALLBACK_TOKEN",
    "previous_callback_token": "CALLBACK_TOKEN_PREVIOUS",
    "callback_signing_secret": "CALLBACK_SIGNING_SECRET",
    "previous_callback_signing_secret": "CALLBACK_SIGNING_SECRET_PREVIOUS",
    "spool_dir": "INGRESS_SPOOL_DIR",
    "spool_after_seconds": "INGRESS_SPOOL_AFTER_SECONDS",
    "spool_segment_bytes": "INGRESS_SPOOL_SEGMENT_BYTES",
    "http_host": "HTTP_HOST",
    "http_port": "HTTP_PORT",
    "max_body_bytes": "INGRESS_MAX_BODY_BYTES",
    "publish_timeout_seconds": "INGRESS_PUBLISH_TIMEOUT_SECONDS",
    "passthru_timeout_seconds": "INGRESS_PASSTHRU_TIMEOUT_SECONDS",
    "passthru_spool_after_seconds": "INGRESS_PASSTHRU_SPOOL_AFTER_SECONDS",
    "exotel_timezone": "EXOTEL_TIMEZONE",
    "kafka_linger_ms": "INGRESS_KAFKA_LINGER_MS",
}


def describe_errors(exc: ValidationError) -> str:
    """A readable summary of a settings error that never contains the input values.

    pydantic's own message repeats the rejected input, which would print a (short or
    malformed) CALLBACK_TOKEN to the console.
    """
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        name = _ENV_NAMES.get(loc[0], loc[0].upper()) if loc else "settings"
        if loc and loc[0] == "kafka":
            name = "KAFKA_" + "_".join(loc[1:]).upper()
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            minimum = {
                "CALLBACK_TOKEN": MIN_TOKEN_LENGTH,
                "CALLBACK_SIGNING_SECRET": MIN_SECRET_LENGTH,
            }
            message = "is required" + (
                f" (at least {minimum[name]} characters)" if name in minimum else ""
            )
        lines.append(f"{name}: {message}")
    return "; ".join(lines)
