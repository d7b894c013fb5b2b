"""Sandbox configuration, read from the environment (prefix ``SANDBOX_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.exotel.fields import Spelling

#: ``documented``: each callback's keys as its document spells them (v1 and Passthru
#: CamelCase, v2/v3 snake_case, LWB lower case); else every key of every callback so.
CallbackSpelling = Literal["documented", "PascalCase", "lowercase", "snake_case"]


class SandboxSettings(BaseSettings):
    """Everything the sandbox can be told. Times are seconds."""

    model_config = SettingsConfigDict(
        env_prefix="SANDBOX_", extra="ignore", populate_by_name=True, frozen=False
    )

    host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("HTTP_HOST", "SANDBOX_HOST", "host")
    )
    port: int = Field(
        default=8090, validation_alias=AliasChoices("HTTP_PORT", "SANDBOX_PORT", "port")
    )
    account_sid: str = "voicebus-sandbox"
    api_key: SecretStr = SecretStr("sandbox-key")
    api_token: SecretStr = SecretStr("sandbox-token")
    # More accounts: "sid:key:token;sid2:key2:token2" (each gets its own rate-limit windows).
    extra_accounts: SecretStr = SecretStr("")

    queue_seconds: float = 0.05
    ring_seconds: float = 0.3
    talk_seconds: float = 0.6
    long_call_seconds: float = 600.0

    callback_timeout_seconds: float = 15.0
    callback_retries: int = 2
    callback_retry_delay_seconds: float = 1.0
    callback_key_spelling: CallbackSpelling = "documented"

    voice_calls_per_minute: int = 200
    get_per_minute: int = 300
    legs_per_minute: int = 200
    rate_limits_enabled: bool = True

    recording_base_url: str = "https://s3-ap-southeast-1.amazonaws.com/exotelrecordings"
    request_log_size: int = 100_000
    log_level: str = "INFO"

    def spelling(self) -> Spelling | None:
        """The spelling callbacks are sent in (None: as documented)."""
        value = self.callback_key_spelling
        return None if value == "documented" else value

    def accounts(self) -> dict[str, tuple[str, str]]:
        """Account sid -> (api key, api token), the default account first."""
        found = {
            self.account_sid: (
                self.api_key.get_secret_value(),
                self.api_token.get_secret_value(),
            )
        }
        for chunk in self.extra_accounts.get_secret_value().split(";"):
            parts = chunk.strip().split(":")
            if len(parts) == 3 and all(parts):
                found[parts[0]] = (parts[1], parts[2])
        return found
