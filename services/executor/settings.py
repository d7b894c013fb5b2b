"""Executor configuration (environment variables, pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.callback_signature import CallbackSigner, check_secret
from services.common.logging import register_secrets
from services.common.settings import KafkaSettings
from services.executor.mapping import CallbackContentType
from services.executor.retry import RetryPolicy
from services.exotel.accounts import ExotelSettings


class ExecutorSettings(BaseSettings):
    """``EXECUTOR_*`` plus the shared ``KAFKA_*``, ``EXOTEL_*``, ``CALLBACK_*`` and ``HTTP_*``."""

    # hide_input_in_errors: a configuration error must never print a (malformed) secret.
    model_config = SettingsConfigDict(
        env_prefix="EXECUTOR_", extra="ignore", hide_input_in_errors=True
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    exotel: ExotelSettings = Field(default_factory=ExotelSettings)

    http_host: str = Field(default="127.0.0.1", validation_alias="HTTP_HOST")
    http_port: int = Field(default=9101, ge=0, le=65_535, validation_alias="HTTP_PORT")
    group_id: str = Field(default="voicebus-executor", min_length=1)
    max_in_flight: int = Field(
        default=64, ge=1, le=10_000, description="Commands queued or running at once."
    )
    max_rate_waiting: int = Field(
        default=1000,
        ge=0,
        le=100_000,
        description="Commands that may wait for their account's rate slot without taking "
        "one of the EXECUTOR_MAX_IN_FLIGHT slots (so a throttled account never keeps "
        "another's commands waiting); beyond that they wait in their slots.",
    )
    ordering_window_seconds: float = Field(
        default=0.25,
        ge=0,
        le=10,
        description="How long at most an lwb.action / leg.hangup waits for an "
        "earlier-published command of the same call on the other topic (cross-topic "
        "ordering), when the consumer cannot tell sooner that none can still come.",
    )
    reconcile_window_seconds: float = Field(
        default=120.0,
        ge=0,
        le=3600,
        description="How long after an interrupted call.connect's intent bulk call details "
        "are searched for the call it may have placed (only finished calls are listed).",
    )
    reconcile_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    commit_interval_seconds: float = Field(default=0.2, gt=0, le=10)
    transactions: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Outcome, result and offset commit in one Kafka transaction per batch "
        "(exactly one result per command). auto: on when KAFKA_ENABLE_IDEMPOTENCE is "
        "(brokers with idempotent producers have transactions; Tansu has neither).",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Where the local state store lives (SQLite with a checkpoint per "
        "partition: the ledger's and the call watch's; a cache of Kafka). On a persistent "
        "volume a restart restores only what changed; unset: a temporary directory, so "
        "every start restores from Kafka. One directory per replica.",
    )
    restore_timeout_seconds: float = Field(
        default=240.0,
        gt=0,
        le=3600,
        description="How long restoring the state of newly assigned partitions may take "
        "before the executor stops with an error (below KAFKA_MAX_POLL_INTERVAL_MS).",
    )
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=600)
    retry_max_attempts: int = Field(default=5, ge=1, le=50)
    retry_initial_seconds: float = Field(default=0.5, gt=0)
    retry_max_backoff_seconds: float = Field(default=20.0, gt=0)
    retry_deadline_seconds: float = Field(default=120.0, gt=0)
    # Missing-callback recovery (services/executor/call_watch.py).
    call_watch_enabled: bool = Field(default=True, description="Poll calls missing a terminal.")
    call_watch_group_id: str = Field(default="voicebus-call-watch", min_length=1)
    call_watch_after_seconds: float = Field(
        default=900.0,
        gt=0,
        le=14_400,
        description="Poll an accepted call's details when no terminal callback arrived "
        "this long after acceptance (then again, with backoff, while it is active).",
    )
    call_watch_sweep_seconds: float = Field(default=5.0, gt=0, le=600)
    call_watch_horizon_hours: float = Field(
        default=24.0, gt=0, le=24 * 30, description="How far back the watch's state is rebuilt."
    )
    call_watch_concurrency: int = Field(
        default=4, ge=1, le=64, description="Call-details polls in flight at once."
    )
    # Finalisation: every finished call's details on call.details (call_watch*.py).
    call_details_enabled: bool = Field(
        default=True,
        description="Fetch every finished call's details once and publish them on "
        "call.details (source poll).",
    )
    call_details_after_seconds: float = Field(
        default=180.0,
        gt=0,
        le=24 * 3600,
        description="How long after a call's first terminal status its details are fetched "
        "(Exotel fills the price about two minutes after a call ends).",
    )

    number_cache_hours: float = Field(
        default=24.0,
        ge=0,
        le=24 * 90,
        description="How long a number's metadata (circle, operator, DND) is reused without "
        "asking Exotel again (number.lookup and the DND check); 0: never cached.",
    )
    number_cache_max: int = Field(
        default=100_000, ge=1, le=10_000_000, description="Numbers cached at most."
    )
    backfill_page_size: int = Field(
        default=100,
        ge=1,
        le=100,
        description="Calls per page of bulk call details a backfill reads (Exotel: at most "
        "100); each page is one GET and one checkpoint.",
    )

    callback_public_url: str = Field(
        default="http://127.0.0.1:8080", validation_alias="CALLBACK_PUBLIC_URL"
    )
    callback_token: SecretStr = Field(validation_alias="CALLBACK_TOKEN")
    callback_signing_secret: SecretStr = Field(
        validation_alias="CALLBACK_SIGNING_SECRET",
        description="HMAC key of the callback URL's correlation parameters (>= 32 chars).",
    )
    callback_content_type: CallbackContentType = Field(
        default="multipart/form-data",
        validation_alias="EXOTEL_CALLBACK_CONTENT_TYPE",
        description="Content type Exotel uses for v1 callbacks (v2/v3 always send JSON).",
    )

    @field_validator("callback_public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("CALLBACK_PUBLIC_URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("callback_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("CALLBACK_TOKEN must be at least 16 characters")
        return value

    @field_validator("callback_signing_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr) -> SecretStr:
        check_secret(value.get_secret_value())
        return value

    def callback_signer(self) -> CallbackSigner:
        """The signer of callback URLs; its secret is registered for log redaction."""
        secret = self.callback_signing_secret.get_secret_value()
        register_secrets([secret])
        return CallbackSigner(secret)

    @model_validator(mode="after")
    def _transactions_need_idempotence(self) -> ExecutorSettings:
        if self.transactions == "on" and not self.kafka.enable_idempotence:
            raise ValueError(
                "EXECUTOR_TRANSACTIONS=on needs KAFKA_ENABLE_IDEMPOTENCE=true "
                "(a transactional producer is an idempotent one)"
            )
        return self

    @model_validator(mode="after")
    def _restore_within_poll_interval(self) -> ExecutorSettings:
        if self.restore_timeout_seconds * 1000 >= self.kafka.max_poll_interval_ms:
            raise ValueError(
                "EXECUTOR_RESTORE_TIMEOUT_SECONDS must stay below KAFKA_MAX_POLL_INTERVAL_MS: "
                "the group drops a member whose rebalance takes longer"
            )
        return self

    @property
    def uses_transactions(self) -> bool:
        """Transactions (and exact end offsets) where the broker has idempotent producers."""
        if self.transactions == "auto":
            return self.kafka.enable_idempotence
        return self.transactions == "on"

    @model_validator(mode="after")
    def _retry_budget(self) -> ExecutorSettings:
        self.retry_policy()  # raises when the budget is inconsistent
        return self

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            initial_seconds=self.retry_initial_seconds,
            max_backoff_seconds=self.retry_max_backoff_seconds,
            deadline_seconds=self.retry_deadline_seconds,
        )
