"""Settings every service shares: where Kafka is and how to talk to it."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """``KAFKA_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

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
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
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


class HttpSettings(BaseSettings):
    """``HTTP_HOST`` / ``HTTP_PORT``: where a service's HTTP server listens."""

    model_config = SettingsConfigDict(env_prefix="HTTP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65_535)
