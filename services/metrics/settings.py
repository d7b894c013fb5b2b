"""Metrics-service configuration (environment variables, pydantic-settings)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import KafkaSettings
from services.metrics.recorder import RecorderLimits


class MetricsSettings(BaseSettings):
    """``METRICS_*`` plus the shared ``KAFKA_*`` and ``HTTP_*``."""

    model_config = SettingsConfigDict(env_prefix="METRICS_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    http_host: str = Field(default="127.0.0.1", validation_alias="HTTP_HOST")
    http_port: int = Field(default=9100, ge=0, le=65_535, validation_alias="HTTP_PORT")
    group_id: str = Field(default="voicebus-metrics", min_length=1)
    executor_group_id: str = Field(
        default="voicebus-executor",
        min_length=1,
        description="The executor's consumer group, whose lag on the command topics is watched.",
    )
    lag_groups: str = Field(
        default="voicebus-call-watch",
        description="More consumer groups to watch, comma-separated (their topics are the "
        "voicebus topics they have committed offsets on). Default: the executor's "
        "missing-callback poller.",
    )
    lag_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    commit_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    dedupe_window: int = Field(default=100_000, ge=1, le=10_000_000)
    call_state_max: int = Field(default=100_000, ge=1, le=10_000_000)
    call_state_ttl_seconds: float = Field(default=6 * 3600.0, gt=0)
    terminal_overdue_seconds: float = Field(default=3600.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=600)

    @field_validator("lag_groups")
    @classmethod
    def _groups(cls, value: str) -> str:
        return ",".join(g.strip() for g in value.split(",") if g.strip())

    @model_validator(mode="after")
    def _overdue_before_forgotten(self) -> MetricsSettings:
        if self.terminal_overdue_seconds >= self.call_state_ttl_seconds:
            raise ValueError(
                "METRICS_TERMINAL_OVERDUE_SECONDS must be less than METRICS_CALL_STATE_TTL_SECONDS"
            )
        return self

    def extra_lag_groups(self) -> list[str]:
        return [g for g in self.lag_groups.split(",") if g]

    def limits(self) -> RecorderLimits:
        return RecorderLimits(
            dedupe_window=self.dedupe_window,
            call_state_max=self.call_state_max,
            call_state_ttl_seconds=self.call_state_ttl_seconds,
            terminal_overdue_seconds=self.terminal_overdue_seconds,
        )
