"""Exotel accounts and their configuration.

One account comes from the environment (``EXOTEL_ACCOUNT_SID``, ``EXOTEL_API_KEY``,
``EXOTEL_API_TOKEN``, ...) and is named ``default``; more can be declared in a TOML file
named by ``EXOTEL_ACCOUNTS_FILE``::

    [accounts.sales]
    account_sid = "sales1"
    api_key_env = "SALES_EXOTEL_KEY"      # read the secret from this env var ...
    api_token = "..."                     # ... or inline (keep the file private)
    region = "mumbai"
    api = "v3"
    voice_calls_per_minute = 100
    lwb_request_encoding = "json"         # LWB create / upgrade bodies: "form" or "json"

Secrets are :class:`pydantic.SecretStr` everywhere, validation errors never echo input
values (``hide_input_in_errors``), and configuration problems raise
:class:`ExotelConfigError` with a message naming the account and field, never a value.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_ACCOUNT",
    "ApiFamily",
    "ApiVersion",
    "ExotelAccount",
    "ExotelConfigError",
    "ExotelSettings",
    "LwbEncoding",
    "Region",
    "load_accounts_file",
]

Region = Literal["singapore", "mumbai"]
ApiVersion = Literal["v1", "v2", "v3"]
#: How the LWB legs API's create and upgrade requests are encoded: ``form``
#: (application/x-www-form-urlencoded, as the rest of v1) or ``json`` (application/json,
#: as the LWB document's samples show). Its hang-up sample is a form, always sent so.
LwbEncoding = Literal["form", "json"]
#: Exotel rate-limit families: voice call APIs (connect, CCM calls, legs POST/PUT), GET
#: APIs (call details, bulk, active legs, v3 legs) and the completed-call Legs API.
ApiFamily = Literal["voice", "get", "legs"]

DEFAULT_ACCOUNT = "default"

V1_HOSTS: Mapping[str, str] = {
    "singapore": "https://api.exotel.com",
    "mumbai": "https://api.in.exotel.com",
}
CCM_HOSTS: Mapping[str, str] = {
    "singapore": "https://ccm-api.exotel.com",
    "mumbai": "https://ccm-api.in.exotel.com",
}

_SECRET_FIELDS = ("account_sid", "api_key", "api_token")


class ExotelConfigError(Exception):
    """Invalid Exotel configuration. The message never contains secret values.

    Deliberately not a ``ValueError``: pydantic would wrap it and echo its input.
    """


def normalise_base_url(value: str | None) -> str | None:
    """Validate ``scheme://host[:port]`` (no path, query, fragment or credentials).

    An empty string means unset. A single trailing ``/`` is tolerated and removed.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("base URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise ValueError("base URL must not contain credentials (user:password@)")
    if not parts.hostname:
        raise ValueError("base URL must name a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("base URL has an invalid port") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("base URL must be scheme://host[:port] with no path, query or fragment")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class ExotelAccount(BaseModel):
    """One Exotel account: credentials, where its APIs live, and its rate limits."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    account_sid: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    api_key: SecretStr
    api_token: SecretStr
    region: Region = "singapore"
    base_url: str | None = None
    ccm_base_url: str | None = None
    api: ApiVersion = "v1"
    #: The zone Exotel's v1 naive timestamps ("2017-03-03 10:48:33") are in.
    timezone: str = "Asia/Kolkata"
    voice_calls_per_minute: int = Field(default=200, gt=0)
    get_per_minute: int = Field(default=300, gt=0)
    legs_per_minute: int = Field(default=200, gt=0)
    lwb_request_encoding: LwbEncoding = "form"

    @field_validator("api_key", "api_token")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("base_url", "ccm_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return normalise_base_url(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @property
    def v1_base(self) -> str:
        """Base URL of the v1 API (``/v1/Accounts/...``)."""
        return self.base_url or V1_HOSTS[self.region]

    @property
    def ccm_base(self) -> str:
        """Base URL of the v2/v3 CCM APIs (``/v2/accounts/...``, ``/v3/accounts/...``)."""
        return self.ccm_base_url or CCM_HOSTS[self.region]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def per_minute(self, family: ApiFamily) -> int:
        """The configured request budget per minute for an API family."""
        if family == "voice":
            return self.voice_calls_per_minute
        if family == "get":
            return self.get_per_minute
        return self.legs_per_minute

    def secrets(self) -> tuple[str, str]:
        """The raw key and token, for scrubbing them out of anything printed."""
        return self.api_key.get_secret_value(), self.api_token.get_secret_value()


class ExotelSettings(BaseSettings):
    """Exotel configuration from ``EXOTEL_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="EXOTEL_",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    account_sid: str | None = None
    api_key: SecretStr | None = None
    api_token: SecretStr | None = None
    region: Region = "singapore"
    base_url: str | None = None
    ccm_base_url: str | None = None
    api: ApiVersion = "v1"
    timezone: str = "Asia/Kolkata"
    accounts_file: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    verify_tls: bool = True
    voice_calls_per_minute: int = Field(default=200, gt=0)
    get_per_minute: int = Field(default=300, gt=0)
    legs_per_minute: int = Field(default=200, gt=0)
    lwb_request_encoding: LwbEncoding = "form"

    @field_validator("account_sid", "accounts_file", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("base_url", "ccm_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return normalise_base_url(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @model_validator(mode="after")
    def _credentials_complete(self) -> ExotelSettings:
        if self.account_sid is None:
            return self
        pairs = (("EXOTEL_API_KEY", self.api_key), ("EXOTEL_API_TOKEN", self.api_token))
        missing = [
            env for env, secret in pairs if secret is None or not secret.get_secret_value().strip()
        ]
        if missing:
            raise ValueError(
                "EXOTEL_ACCOUNT_SID is set but " + " and ".join(missing) + " is missing or empty"
            )
        return self

    def default_account(self) -> ExotelAccount | None:
        """The ``default`` account described by the environment, if EXOTEL_ACCOUNT_SID is set."""
        if self.account_sid is None or self.api_key is None or self.api_token is None:
            return None
        return _build_account(
            DEFAULT_ACCOUNT,
            {
                "account_sid": self.account_sid,
                "api_key": self.api_key,
                "api_token": self.api_token,
                "region": self.region,
                "base_url": self.base_url,
                "ccm_base_url": self.ccm_base_url,
                "api": self.api,
                "timezone": self.timezone,
                "voice_calls_per_minute": self.voice_calls_per_minute,
                "get_per_minute": self.get_per_minute,
                "legs_per_minute": self.legs_per_minute,
                "lwb_request_encoding": self.lwb_request_encoding,
            },
            origin="environment",
        )

    def accounts(self, environ: Mapping[str, str] | None = None) -> dict[str, ExotelAccount]:
        """Every configured account by name: ``default`` from the env, then the file's.

        ``environ`` (default ``os.environ``) resolves ``*_env`` references in the file.
        Raises :class:`ExotelConfigError` on any problem.
        """
        result: dict[str, ExotelAccount] = {}
        default = self.default_account()
        if default is not None:
            result[default.name] = default
        if self.accounts_file is not None:
            for name, account in load_accounts_file(self.accounts_file, environ).items():
                if name in result:
                    raise ExotelConfigError(
                        f"{self.accounts_file}: account {name!r} is also defined by "
                        "EXOTEL_ACCOUNT_SID; rename one of them"
                    )
                result[name] = account
        return result


def load_accounts_file(
    path: Path, environ: Mapping[str, str] | None = None
) -> dict[str, ExotelAccount]:
    """Read ``[accounts.<name>]`` tables from a TOML file into accounts."""
    env = os.environ if environ is None else environ
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ExotelConfigError(f"{path}: cannot read accounts file ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ExotelConfigError(f"{path}: not valid TOML ({e})") from None

    unknown = set(data) - {"accounts"}
    if unknown:
        raise ExotelConfigError(
            f"{path}: unexpected top-level keys {sorted(unknown)}; expected [accounts.<name>]"
        )
    tables = data.get("accounts", {})
    if not isinstance(tables, dict):
        raise ExotelConfigError(f"{path}: 'accounts' must be a table of [accounts.<name>] tables")

    result: dict[str, ExotelAccount] = {}
    for name, table in tables.items():
        where = f"{path}: account {name!r}"
        if not isinstance(table, dict):
            raise ExotelConfigError(f"{where}: must be a table")
        values = dict(table)
        for field in _SECRET_FIELDS:
            ref_key = f"{field}_env"
            if ref_key not in values:
                continue
            ref = values.pop(ref_key)
            if field in values:
                raise ExotelConfigError(f"{where}: give either {field} or {ref_key}, not both")
            if not isinstance(ref, str) or not ref:
                raise ExotelConfigError(f"{where}: {ref_key} must name an environment variable")
            if not env.get(ref):
                raise ExotelConfigError(
                    f"{where}: environment variable {ref} (named by {ref_key}) is not set"
                )
            values[field] = env[ref]
        result[name] = _build_account(name, values, origin=where)
    return result


def _build_account(name: str, values: Mapping[str, Any], *, origin: str) -> ExotelAccount:
    if "name" in values:
        raise ExotelConfigError(f"{origin}: 'name' comes from the table name; remove it")
    try:
        return ExotelAccount.model_validate({"name": name, **values})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'account'}: {err['msg']}"
            for err in e.errors(include_input=False, include_url=False)
        )
        raise ExotelConfigError(f"{origin}: invalid account {name!r}: {problems}") from None
