"""Accounts: where their APIs live, and how they are configured (env and TOML file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.exotel import ExotelAccount, ExotelConfigError, ExotelSettings
from tests.exotel.conftest import API_KEY, API_TOKEN, make_account

ENV_VARS = (
    "EXOTEL_ACCOUNT_SID",
    "EXOTEL_API_KEY",
    "EXOTEL_API_TOKEN",
    "EXOTEL_REGION",
    "EXOTEL_BASE_URL",
    "EXOTEL_CCM_BASE_URL",
    "EXOTEL_API",
    "EXOTEL_TIMEZONE",
    "EXOTEL_ACCOUNTS_FILE",
    "EXOTEL_TIMEOUT_SECONDS",
    "EXOTEL_VERIFY_TLS",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- hosts


def test_a_singapore_account_uses_the_global_hosts() -> None:
    account = make_account(region="singapore")
    assert account.v1_base == "https://api.exotel.com"
    assert account.ccm_base == "https://ccm-api.exotel.com"


def test_a_mumbai_account_uses_the_in_hosts() -> None:
    account = make_account(region="mumbai")
    assert account.v1_base == "https://api.in.exotel.com"
    assert account.ccm_base == "https://ccm-api.in.exotel.com"


def test_base_url_overrides_replace_the_regions_hosts() -> None:
    account = make_account(
        region="mumbai", base_url="http://127.0.0.1:8090/", ccm_base_url="http://sandbox:8090"
    )
    assert account.v1_base == "http://127.0.0.1:8090"
    assert account.ccm_base == "http://sandbox:8090"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://api.exotel.com",
        "api.exotel.com",
        "https://api.exotel.com/v1",
        "https://api.exotel.com?x=1",
        "https://user:hunter2@api.exotel.com",
        "https://api.exotel.com:99999",
        "https://",
    ],
)
def test_a_base_url_with_a_path_credentials_or_no_host_is_refused(url: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        make_account(base_url=url)
    assert "hunter2" not in str(excinfo.value)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        make_account(timezone="Mars/Olympus")


def test_rate_limits_default_to_exotels_published_limits() -> None:
    account = make_account()
    assert account.per_minute("voice") == 200
    assert account.per_minute("get") == 300
    assert account.per_minute("legs") == 200


def test_an_accounts_repr_and_str_never_show_its_secrets() -> None:
    account = make_account()
    for text in (repr(account), str(account), repr(account.model_dump())):
        assert API_KEY not in text
        assert API_TOKEN not in text


def test_an_account_is_immutable() -> None:
    account = make_account()
    with pytest.raises(ValidationError):
        account.region = "mumbai"  # type: ignore[misc]


def test_an_account_validation_error_never_echoes_a_secret() -> None:
    with pytest.raises(ValidationError) as excinfo:
        ExotelAccount.model_validate(
            {"name": "x", "account_sid": "bad/sid", "api_key": API_KEY, "api_token": API_TOKEN}
        )
    assert API_KEY not in str(excinfo.value)
    assert API_TOKEN not in str(excinfo.value)


# ---------------------------------------------------------------- environment


def test_the_environment_describes_the_default_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOTEL_ACCOUNT_SID", "acme1")
    monkeypatch.setenv("EXOTEL_API_KEY", API_KEY)
    monkeypatch.setenv("EXOTEL_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("EXOTEL_REGION", "mumbai")
    monkeypatch.setenv("EXOTEL_API", "v3")
    monkeypatch.setenv("EXOTEL_BASE_URL", "http://127.0.0.1:8090")
    settings = ExotelSettings()
    accounts = settings.accounts()
    assert list(accounts) == ["default"]
    account = accounts["default"]
    assert account.account_sid == "acme1"
    assert account.api_key.get_secret_value() == API_KEY
    assert account.api == "v3"
    assert account.v1_base == "http://127.0.0.1:8090"
    assert account.ccm_base == "https://ccm-api.in.exotel.com"
    assert account.timezone == "Asia/Kolkata"


def test_defaults_are_singapore_v1_ten_seconds_and_verified_tls() -> None:
    settings = ExotelSettings()
    assert settings.region == "singapore"
    assert settings.api == "v1"
    assert settings.timeout_seconds == 10.0
    assert settings.verify_tls is True
    assert settings.accounts() == {}


def test_without_an_account_sid_there_is_no_default_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXOTEL_API_KEY", API_KEY)
    assert ExotelSettings().accounts() == {}


@pytest.mark.parametrize("missing", ["EXOTEL_API_KEY", "EXOTEL_API_TOKEN"])
def test_a_sid_without_key_or_token_is_refused_with_a_clear_message_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setenv("EXOTEL_ACCOUNT_SID", "acme1")
    monkeypatch.setenv("EXOTEL_API_KEY", API_KEY)
    monkeypatch.setenv("EXOTEL_API_TOKEN", API_TOKEN)
    monkeypatch.delenv(missing)
    with pytest.raises(ValidationError) as excinfo:
        ExotelSettings()
    text = str(excinfo.value)
    assert f"EXOTEL_ACCOUNT_SID is set but {missing} is missing" in text
    assert API_KEY not in text
    assert API_TOKEN not in text


def test_blank_sid_and_accounts_file_variables_mean_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXOTEL_ACCOUNT_SID", "")
    monkeypatch.setenv("EXOTEL_ACCOUNTS_FILE", "")
    monkeypatch.setenv("EXOTEL_BASE_URL", "")
    settings = ExotelSettings()
    assert settings.accounts_file is None
    assert settings.base_url is None
    assert settings.accounts() == {}


def test_verify_tls_can_be_turned_off_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOTEL_VERIFY_TLS", "false")
    monkeypatch.setenv("EXOTEL_TIMEOUT_SECONDS", "2.5")
    settings = ExotelSettings()
    assert settings.verify_tls is False
    assert settings.timeout_seconds == 2.5


def test_a_settings_repr_never_shows_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOTEL_ACCOUNT_SID", "acme1")
    monkeypatch.setenv("EXOTEL_API_KEY", API_KEY)
    monkeypatch.setenv("EXOTEL_API_TOKEN", API_TOKEN)
    settings = ExotelSettings()
    assert API_KEY not in repr(settings)
    assert API_TOKEN not in str(settings)


# ---------------------------------------------------------------- accounts file


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(text, encoding="utf-8")
    return path


def default_account_and_file(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """The environment's ``default`` account, and the accounts file at ``path``."""
    monkeypatch.setenv("EXOTEL_ACCOUNT_SID", "acme1")
    monkeypatch.setenv("EXOTEL_API_KEY", API_KEY)
    monkeypatch.setenv("EXOTEL_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("EXOTEL_ACCOUNTS_FILE", str(path))


def test_the_accounts_file_adds_named_accounts_beside_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_toml(
        tmp_path,
        """
[accounts.sales]
account_sid = "sales1"
api_key = "sales-key"
api_token_env = "SALES_TOKEN"
region = "mumbai"
api = "v3"
voice_calls_per_minute = 100

[accounts.support]
account_sid = "support1"
api_key_env = "SUPPORT_KEY"
api_token_env = "SUPPORT_TOKEN"
base_url = "http://127.0.0.1:8090"
timezone = "UTC"
""",
    )
    default_account_and_file(monkeypatch, path)
    monkeypatch.setenv("SALES_TOKEN", "sales-token")
    monkeypatch.setenv("SUPPORT_KEY", "support-key")
    monkeypatch.setenv("SUPPORT_TOKEN", "support-token")

    accounts = ExotelSettings().accounts()

    assert sorted(accounts) == ["default", "sales", "support"]
    sales = accounts["sales"]
    assert sales.name == "sales"
    assert sales.api_token.get_secret_value() == "sales-token"
    assert sales.ccm_base == "https://ccm-api.in.exotel.com"
    assert sales.api == "v3"
    assert sales.per_minute("voice") == 100
    assert sales.per_minute("get") == 300
    support = accounts["support"]
    assert support.api_key.get_secret_value() == "support-key"
    assert support.v1_base == "http://127.0.0.1:8090"
    assert support.timezone == "UTC"


def test_a_secret_env_reference_that_is_not_set_names_the_variable_not_a_value(
    tmp_path: Path,
) -> None:
    path = write_toml(
        tmp_path,
        '[accounts.sales]\naccount_sid = "s1"\napi_key = "k"\napi_token_env = "NOPE_TOKEN"\n',
    )
    settings = ExotelSettings(accounts_file=path)
    with pytest.raises(ExotelConfigError, match="NOPE_TOKEN") as excinfo:
        settings.accounts(environ={})
    assert "'sales'" in str(excinfo.value)


def test_a_file_account_missing_its_token_is_refused_without_echoing_its_key(
    tmp_path: Path,
) -> None:
    path = write_toml(tmp_path, f'[accounts.sales]\naccount_sid = "s1"\napi_key = "{API_KEY}"\n')
    with pytest.raises(ExotelConfigError) as excinfo:
        ExotelSettings(accounts_file=path).accounts(environ={})
    text = str(excinfo.value)
    assert "api_token: Field required" in text
    assert API_KEY not in text


def test_a_file_account_with_an_invalid_value_is_refused_without_echoing_secrets(
    tmp_path: Path,
) -> None:
    path = write_toml(
        tmp_path,
        f'[accounts.sales]\naccount_sid = "s1"\napi_key = "{API_KEY}"\n'
        f'api_token = "{API_TOKEN}"\nregion = "tokyo"\n',
    )
    with pytest.raises(ExotelConfigError, match="region") as excinfo:
        ExotelSettings(accounts_file=path).accounts(environ={})
    assert API_KEY not in str(excinfo.value)
    assert API_TOKEN not in str(excinfo.value)


def test_a_misspelt_key_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        '[accounts.sales]\naccount_sid = "s1"\napi_key = "k"\napi_token = "t"\napi_tokn = "x"\n',
    )
    with pytest.raises(ExotelConfigError, match="api_tokn"):
        ExotelSettings(accounts_file=path).accounts(environ={})


def test_a_secret_given_both_inline_and_by_env_is_refused(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        '[accounts.sales]\naccount_sid = "s1"\napi_key = "k"\napi_token = "t"\n'
        'api_token_env = "T"\n',
    )
    with pytest.raises(ExotelConfigError, match="either api_token or api_token_env"):
        ExotelSettings(accounts_file=path).accounts(environ={"T": "x"})


def test_a_file_account_named_default_clashes_with_the_env_account(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_toml(
        tmp_path, '[accounts.default]\naccount_sid = "s1"\napi_key = "k"\napi_token = "t"\n'
    )
    monkeypatch.setenv("EXOTEL_ACCOUNT_SID", "acme1")
    monkeypatch.setenv("EXOTEL_API_KEY", API_KEY)
    monkeypatch.setenv("EXOTEL_API_TOKEN", API_TOKEN)
    with pytest.raises(ExotelConfigError, match="also defined by EXOTEL_ACCOUNT_SID"):
        ExotelSettings(accounts_file=path).accounts()


def test_a_file_account_named_default_is_fine_without_an_env_account(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path, '[accounts.default]\naccount_sid = "s1"\napi_key = "k"\napi_token = "t"\n'
    )
    assert list(ExotelSettings(accounts_file=path).accounts()) == ["default"]


def test_invalid_toml_is_reported_with_the_file_name(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[accounts.sales\n")
    with pytest.raises(ExotelConfigError, match="not valid TOML"):
        ExotelSettings(accounts_file=path).accounts()


def test_a_missing_accounts_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ExotelConfigError, match="cannot read accounts file"):
        ExotelSettings(accounts_file=tmp_path / "nope.toml").accounts()


def test_unexpected_top_level_tables_are_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[account.sales]\naccount_sid = "s1"\n')
    with pytest.raises(ExotelConfigError, match="unexpected top-level keys"):
        ExotelSettings(accounts_file=path).accounts()


def test_an_account_name_unfit_for_a_metric_label_is_refused(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path, '[accounts."bad name!"]\naccount_sid = "s1"\napi_key = "k"\napi_token = "t"\n'
    )
    with pytest.raises(ExotelConfigError, match="name"):
        ExotelSettings(accounts_file=path).accounts()


def test_lwb_requests_are_forms_unless_an_account_asks_for_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_toml(
        tmp_path,
        """
[accounts.lwbjson]
account_sid = "lwb1"
api_key = "lwb-key"
api_token = "lwb-token"
lwb_request_encoding = "json"
""",
    )
    default_account_and_file(monkeypatch, path)
    accounts = ExotelSettings().accounts()
    assert accounts["default"].lwb_request_encoding == "form"
    assert accounts["lwbjson"].lwb_request_encoding == "json"
    monkeypatch.setenv("EXOTEL_LWB_REQUEST_ENCODING", "json")
    default = ExotelSettings().default_account()
    assert default is not None
    assert default.lwb_request_encoding == "json"


def test_an_unknown_lwb_encoding_is_refused_by_name(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
[accounts.odd]
account_sid = "odd1"
api_key = "odd-key"
api_token = "odd-token"
lwb_request_encoding = "xml"
""",
    )
    with pytest.raises(ExotelConfigError, match="lwb_request_encoding"):
        ExotelSettings(accounts_file=path).accounts()
