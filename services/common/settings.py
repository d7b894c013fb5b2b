"""Settings every service shares: where Kafka is and how to talk to it (TLS, SASL)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from aiokafka.helpers import create_ssl_context
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

#: The settings naming a file, by field: checked to exist and be readable at start.
SSL_FILES = {
    "ssl_ca_file": "KAFKA_SSL_CA_FILE",
    "ssl_cert_file": "KAFKA_SSL_CERT_FILE",
    "ssl_key_file": "KAFKA_SSL_KEY_FILE",
}


class KafkaSettings(BaseSettings):
    """``KAFKA_*`` environment variables.

    A secured cluster: ``KAFKA_SECURITY_PROTOCOL`` with, for SASL, a mechanism, user and
    password, and for TLS the CA that signed the brokers' certificates (else the system's
    trusted CAs) and optionally a client certificate and key (mutual TLS). Every Kafka client
    voicebus makes takes its options from :func:`services.common.kafka_security.security_options`.
    """

    # hide_input_in_errors: a configuration error must never print KAFKA_SASL_PASSWORD.
    model_config = SettingsConfigDict(
        env_prefix="KAFKA_", extra="ignore", hide_input_in_errors=True
    )

    bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1)
    enable_idempotence: bool = Field(
        default=True,
        description="Idempotent producer; must be false against the embedded (Tansu) broker.",
    )
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    topic_partitions: int = Field(default=12, ge=1, le=1_000)
    replication_factor: int = Field(
        default=1, ge=1, le=7, description="Replication factor of the topics voicebus creates."
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        le=7,
        description="min.insync.replicas of the topics voicebus creates (unset: the broker's "
        "default). With acks=all, a write is refused while fewer replicas are in sync.",
    )
    request_timeout_ms: int = Field(
        default=30_000,
        ge=1_000,
        description="One request's deadline; also how long a service waits at start for the "
        "bootstrap servers to answer before it stops with an error naming the setting.",
    )
    client_id: str = Field(default="voicebus")
    health_probe_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="How often each service writes a probe record to every partition of "
        "voicebus.health (acks=all) to tell /readyz whether Kafka takes writes; 0: never.",
    )
    health_probe_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How long a probe waits for its acknowledgements before Kafka counts "
        "as not writable.",
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).",
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with a SASL_ protocol.",
    )
    sasl_username: str | None = Field(default=None, description="The SASL user.")
    sasl_password: SecretStr | None = Field(
        default=None, description="The SASL user's password (a secret: never logged)."
    )
    ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the brokers' certificates; unset: the "
        "system's trusted CAs (enough for most managed Kafka).",
    )
    ssl_cert_file: Path | None = Field(
        default=None, description="PEM client certificate (chain) for mutual TLS."
    )
    ssl_key_file: Path | None = Field(
        default=None, description="PEM private key of KAFKA_SSL_CERT_FILE."
    )
    ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of an encrypted KAFKA_SSL_KEY_FILE (a secret)."
    )

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().upper() or None
        return value

    @field_validator(
        "sasl_username", "sasl_password", "ssl_ca_file", "ssl_cert_file", "ssl_key_file",
        "ssl_key_password", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> KafkaSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                "KAFKA_HEARTBEAT_INTERVAL_MS must be at most a third of KAFKA_SESSION_TIMEOUT_MS"
            )
        return self

    @model_validator(mode="after")
    def _min_isr_within_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas is not None and (
            self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError(
                "KAFKA_MIN_INSYNC_REPLICAS must not exceed KAFKA_REPLICATION_FACTOR "
                "(no write could ever be acknowledged)"
            )
        return self

    @model_validator(mode="after")
    def _security_consistent(self) -> KafkaSettings:
        problem = self.security_problem()
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def security_problem(self) -> str | None:
        """What is inconsistent in the security settings, naming the setting to fix (never
        the value of a secret); ``None`` when they fit together."""
        protocol = f"KAFKA_SECURITY_PROTOCOL={self.security_protocol}"
        sasl = {
            "KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.sasl_username,
            "KAFKA_SASL_PASSWORD": self.sasl_password,
        }
        tls = {
            "KAFKA_SSL_CA_FILE": self.ssl_ca_file,
            "KAFKA_SSL_CERT_FILE": self.ssl_cert_file,
            "KAFKA_SSL_KEY_FILE": self.ssl_key_file,
            "KAFKA_SSL_KEY_PASSWORD": self.ssl_key_password,
        }
        missing = [name for name, value in sasl.items() if value is None]
        stray = [name for name, value in sasl.items() if value is not None]
        if self.uses_sasl and missing:
            mechanisms = "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            return f"{', '.join(missing)} required with {protocol} (mechanism {mechanisms})"
        if not self.uses_sasl and stray:
            return f"{', '.join(stray)} set, but {protocol} does not use SASL (SASL_SSL does)"
        if not self.uses_tls:
            stray = [name for name, value in tls.items() if value is not None]
            if stray:
                return f"{', '.join(stray)} set, but {protocol} does not use TLS (SSL does)"
            return None
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            return "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (mutual TLS)"
        if self.ssl_key_password is not None and self.ssl_key_file is None:
            return "KAFKA_SSL_KEY_PASSWORD set without KAFKA_SSL_KEY_FILE"
        for field, name in SSL_FILES.items():
            problem = _unreadable(name, getattr(self, field))
            if problem is not None:
                return problem
        return _unloadable(self)

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of every client: the brokers' certificates verified against
        ``KAFKA_SSL_CA_FILE`` (else the system's CAs), host names checked, and the client
        certificate presented when one is set."""
        password = self.ssl_key_password
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ssl_ca_file,
            certfile=self.ssl_cert_file,
            keyfile=self.ssl_key_file,
            password=password.get_secret_value() if password is not None else _no_password,
        )
        return context

    def secrets(self) -> list[str]:
        """Values that must never be logged (registered for redaction by every client)."""
        return [
            s.get_secret_value()
            for s in (self.sasl_password, self.ssl_key_password)
            if s is not None
        ]


def _unreadable(name: str, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        return f"{name}={path} does not exist"
    except IsADirectoryError:
        return f"{name}={path} is a directory, not a PEM file"
    except OSError as exc:
        return f"{name}={path} cannot be read ({exc.strerror or type(exc).__name__})"
    return None


def _unloadable(settings: KafkaSettings) -> str | None:
    """The PEM files loaded as the clients will load them: a file that is not a certificate,
    or a key that does not match its certificate (or its password), is named now."""
    try:
        create_ssl_context(cafile=settings.ssl_ca_file)
    except (ssl.SSLError, ValueError) as exc:
        return f"KAFKA_SSL_CA_FILE={settings.ssl_ca_file} holds no PEM certificate ({exc})"
    try:
        settings.ssl_context()
    except (ssl.SSLError, ValueError) as exc:
        return (
            f"KAFKA_SSL_CERT_FILE={settings.ssl_cert_file} and KAFKA_SSL_KEY_FILE="
            f"{settings.ssl_key_file} do not load as a certificate and its key ({exc}); "
            "an encrypted key needs KAFKA_SSL_KEY_PASSWORD"
        )
    return None


def _no_password() -> bytes:
    """Never prompt on the terminal for an encrypted key's password (OpenSSL would)."""
    return b""


class HttpSettings(BaseSettings):
    """``HTTP_HOST`` / ``HTTP_PORT``: where a service's HTTP server listens."""

    model_config = SettingsConfigDict(env_prefix="HTTP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65_535)
