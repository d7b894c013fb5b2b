"""The ``KAFKA_*`` security settings: what fits together, what stops a service at start (with
the setting named and no secret echoed), and the one mapping onto every client's options."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from services.common.kafka_security import broker_security, security_options
from services.common.logging import REDACTED, redact
from services.common.settings import KafkaSettings
from services.ingress.settings import IngressSettings, describe_errors
from tests.support.tls import Certificates

PASSWORD = "kafka-settings-password-0123456789"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates.create(tmp_path_factory.mktemp("certs"))


def scram(**overrides: Any) -> dict[str, Any]:
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "voicebus",
        "sasl_password": PASSWORD,
        **overrides,
    }


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        KafkaSettings(**values)
    return str(caught.value)


# -- what fits together ----------------------------------------------------------------


def test_plaintext_is_the_default_and_adds_nothing_to_the_clients() -> None:
    settings = KafkaSettings()
    assert settings.security_protocol == "PLAINTEXT"
    assert security_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert broker_security(settings) is None


def test_the_environment_configures_sasl_over_tls(
    monkeypatch: pytest.MonkeyPatch, certs: Certificates
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")  # case does not matter
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "scram-sha-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "voicebus")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("KAFKA_SSL_CA_FILE", str(certs.ca_file))
    settings = KafkaSettings()
    assert (settings.security_protocol, settings.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert settings.ssl_ca_file == certs.ca_file
    assert PASSWORD not in repr(settings)


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CA_FILE"):
        monkeypatch.setenv(f"KAFKA_{name}", "")
    assert KafkaSettings().security_problem() is None


# -- what stops a service at start -----------------------------------------------------


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (scram(sasl_mechanism=None), "KAFKA_SASL_MECHANISM required with "),
        (scram(sasl_username=None, sasl_password=None), "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD"),
        (scram(security_protocol="PLAINTEXT"), "does not use SASL"),
        ({"sasl_mechanism": "PLAIN"}, "KAFKA_SASL_MECHANISM set, but KAFKA_SECURITY_PROTOCOL="),
        ({"security_protocol": "TLS"}, "security_protocol"),
        (scram(sasl_mechanism="GSSAPI"), "sasl_mechanism"),
    ],
)
def test_inconsistent_sasl_settings_are_refused_naming_the_setting(
    values: dict[str, Any], named: str
) -> None:
    assert named in refusal(**values)


def test_tls_files_without_a_tls_protocol_are_refused(certs: Certificates) -> None:
    message = refusal(**scram(security_protocol="SASL_PLAINTEXT", ssl_ca_file=certs.ca_file))
    assert "KAFKA_SSL_CA_FILE set, but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS" in (
        message
    )


def test_a_client_certificate_needs_its_key(certs: Certificates) -> None:
    message = refusal(security_protocol="SSL", ssl_cert_file=certs.client_cert_file)
    assert "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together" in message


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    assert f"KAFKA_SSL_CA_FILE={missing} does not exist" in refusal(
        security_protocol="SSL", ssl_ca_file=missing
    )


def test_a_ca_file_that_is_a_directory_is_named(tmp_path: Path) -> None:
    assert "is a directory" in refusal(security_protocol="SSL", ssl_ca_file=tmp_path)


def test_a_ca_file_without_a_certificate_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert f"KAFKA_SSL_CA_FILE={junk} holds no PEM certificate" in refusal(
        security_protocol="SSL", ssl_ca_file=junk
    )


def test_a_key_that_is_not_the_certificates_is_named(certs: Certificates) -> None:
    message = refusal(
        security_protocol="SSL",
        ssl_cert_file=certs.client_cert_file,
        ssl_key_file=certs.broker_keystore,  # another key (and the broker's chain)
    )
    assert "do not load as a certificate and its key" in message


def test_an_encrypted_key_needs_its_password_and_loads_with_it(
    certs: Certificates, tmp_path: Path
) -> None:
    key = load_pem_private_key(certs.client_key_file.read_bytes(), password=None)
    encrypted = tmp_path / "client-encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"k-pass"))
    )
    values: dict[str, Any] = {
        "security_protocol": "SSL",
        "ssl_cert_file": certs.client_cert_file,
        "ssl_key_file": encrypted,
    }
    assert "an encrypted key needs KAFKA_SSL_KEY_PASSWORD" in refusal(**values)
    settings = KafkaSettings.model_validate(values | {"ssl_key_password": "k-pass"})
    assert isinstance(security_options(settings)["ssl_context"], ssl.SSLContext)


def test_a_refusal_never_echoes_the_password() -> None:
    message = refusal(**scram(security_protocol="PLAINTEXT"))
    assert "KAFKA_SASL_PASSWORD" in message
    assert PASSWORD not in message


def test_a_service_names_the_kafka_setting_without_echoing_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLBACK_TOKEN", "a-callback-token-0123456789")
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", "a-signing-secret-0123456789abcdef01234")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    with pytest.raises(ValidationError) as caught:
        IngressSettings()
    described = describe_errors(caught.value)
    assert "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME required" in described
    assert PASSWORD not in described + str(caught.value)


# -- the one mapping onto the clients --------------------------------------------------


def test_sasl_over_tls_maps_onto_aiokafka_options(certs: Certificates) -> None:
    options = security_options(KafkaSettings(**scram(ssl_ca_file=certs.ca_file)))
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "voicebus",
        "sasl_plain_password": PASSWORD,
    }
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    only_ours = ssl.create_default_context(cafile=str(certs.ca_file)).get_ca_certs()
    assert len(only_ours) == 1
    assert context.get_ca_certs() == only_ours  # the CA file, not the system's CAs


def test_sasl_without_tls_carries_no_ssl_context() -> None:
    options = security_options(KafkaSettings(**scram(security_protocol="SASL_PLAINTEXT")))
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert "ssl_context" not in options


def test_tls_without_a_ca_file_trusts_the_systems_cas() -> None:
    context = security_options(KafkaSettings(security_protocol="SSL"))["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.cert_store_stats() == ssl.create_default_context().cert_store_stats()


@pytest.mark.parametrize(
    ("values", "security"),
    [
        (scram(sasl_mechanism="PLAIN"), SASLPlaintext),
        (scram(sasl_mechanism="SCRAM-SHA-256"), SASLScram256),
        (scram(), SASLScram512),
        (scram(security_protocol="SASL_PLAINTEXT"), SASLScram512),
        ({"security_protocol": "SSL"}, BaseSecurity),
    ],
)
def test_the_faststream_broker_gets_the_same_options(
    values: dict[str, Any], security: type[BaseSecurity]
) -> None:
    settings = KafkaSettings(**values)
    made = broker_security(settings)
    assert type(made) is security
    expected, parsed = security_options(settings), parse_security(made)
    assert type(parsed.pop("ssl_context", None)) is type(expected.pop("ssl_context", None))
    assert parsed == expected


def test_handing_the_password_to_a_client_registers_it_for_redaction() -> None:
    secret = "a-password-only-this-test-uses-42"
    security_options(KafkaSettings(**scram(sasl_password=secret)))
    assert redact(f"connecting with {secret}") == f"connecting with {REDACTED}"
