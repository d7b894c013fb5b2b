"""The start-up access check without a broker: an address that never answers, one that
refuses, and a TLS server whose certificate is not trusted each give an error naming the
setting to fix, within ``KAFKA_REQUEST_TIMEOUT_MS`` (never a hang, never 30 silent retries)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import trustme

from contracts.topics import ALL_TOPICS
from services.cli.exits import Exit
from services.client import KafkaUnavailable, VoicebusClient
from services.common.kafka import ensure_topics
from services.common.kafka_security import KafkaAccessError, check_access
from services.common.processes import free_port
from services.common.settings import KafkaSettings
from tests.cli.helpers import ainvoke
from tests.support.network import silent_address, tls_address
from tests.support.tls import Certificates

TIMEOUT_MS = 1500


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates.create(tmp_path_factory.mktemp("certs"))


def settings(bootstrap: str, **values: Any) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS, **values)


async def refused(check: Any) -> tuple[KafkaAccessError, float]:
    started = time.monotonic()
    with pytest.raises(KafkaAccessError) as caught:
        await check
    return caught.value, time.monotonic() - started


async def test_an_address_that_never_answers_is_named_within_the_request_timeout() -> None:
    with silent_address() as address:
        error, took = await refused(check_access(settings(address)))
    assert error.setting == "KAFKA_BOOTSTRAP_SERVERS"
    assert f"no Kafka broker answered at KAFKA_BOOTSTRAP_SERVERS={address} within 1.5s" in str(
        error
    )
    assert "KAFKA_REQUEST_TIMEOUT_MS=1500" in str(error)
    assert TIMEOUT_MS / 1000 * 0.9 <= took < TIMEOUT_MS / 1000 + 1.0


async def test_ensure_topics_gives_up_on_a_silent_address_within_the_request_timeout() -> None:
    with silent_address() as address:
        error, took = await refused(ensure_topics(settings(address), ALL_TOPICS))
    assert error.setting == "KAFKA_BOOTSTRAP_SERVERS"
    assert took < TIMEOUT_MS / 1000 + 1.0


async def test_a_refused_connection_is_retried_until_the_deadline_then_named() -> None:
    address = f"127.0.0.1:{free_port()}"
    error, took = await refused(check_access(settings(address)))
    assert error.setting == "KAFKA_BOOTSTRAP_SERVERS"
    assert f"cannot connect to {address}" in str(error)
    assert not error.fatal
    assert TIMEOUT_MS / 1000 * 0.5 <= took < TIMEOUT_MS / 1000 + 1.0


async def test_without_waiting_a_refused_connection_is_named_at_once() -> None:
    error, took = await refused(check_access(settings(f"127.0.0.1:{free_port()}"), wait=False))
    assert error.setting == "KAFKA_BOOTSTRAP_SERVERS"
    assert took < 0.5


async def test_an_untrusted_certificate_names_the_ca_file_at_once(certs: Certificates) -> None:
    async with tls_address(certs.broker_keystore) as address:
        values = {"security_protocol": "SSL", "ssl_ca_file": certs.other_ca_file}
        error, took = await refused(check_access(settings(address, **values)))
    assert error.setting == "KAFKA_SSL_CA_FILE"
    assert error.fatal
    assert f"the TLS certificate of the broker at {address} is not trusted" in str(error)
    assert f"KAFKA_SSL_CA_FILE={certs.other_ca_file}" in str(error)
    assert took < 1.0  # not retried: waiting cannot mend a setting


async def test_without_a_ca_file_the_systems_cas_are_named(certs: Certificates) -> None:
    async with tls_address(certs.broker_keystore) as address:
        error, _ = await refused(check_access(settings(address, security_protocol="SSL")))
    assert error.setting == "KAFKA_SSL_CA_FILE"
    assert "the system's trusted CAs (KAFKA_SSL_CA_FILE is unset)" in str(error)


async def test_a_certificate_for_another_host_names_the_bootstrap_servers(tmp_path: Path) -> None:
    ca = trustme.CA()
    elsewhere = Certificates.keystore(ca.issue_cert("kafka.elsewhere.test"), tmp_path / "ks.pem")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    async with tls_address(elsewhere) as address:
        values = {"security_protocol": "SSL", "ssl_ca_file": tmp_path / "ca.pem"}
        error, _ = await refused(check_access(settings(address, **values)))
    assert error.setting == "KAFKA_BOOTSTRAP_SERVERS"
    assert "does not name that host" in str(error)


async def test_a_plaintext_client_at_a_tls_listener_is_told_to_check_the_protocol(
    certs: Certificates,
) -> None:
    async with tls_address(certs.broker_keystore) as address:
        error, took = await refused(check_access(settings(address)))
    assert error.setting in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_BOOTSTRAP_SERVERS")
    assert took < TIMEOUT_MS / 1000 + 1.0


async def test_the_client_helper_says_why_it_cannot_start(certs: Certificates) -> None:
    async with tls_address(certs.broker_keystore) as address:
        values = {"security_protocol": "SSL", "ssl_ca_file": certs.other_ca_file}
        client = VoicebusClient(settings(address, **values))
        with pytest.raises(
            KafkaUnavailable, match=f"Kafka unreachable at {address}: .*KAFKA_SSL_CA_FILE"
        ):
            await client.start()
        await client.stop()


async def test_the_cli_exits_4_naming_the_ca_file(certs: Certificates) -> None:
    async with tls_address(certs.broker_keystore) as address:
        result = await ainvoke(
            ["topics", "--check"],
            env={
                "KAFKA_BOOTSTRAP_SERVERS": address,
                "KAFKA_REQUEST_TIMEOUT_MS": str(TIMEOUT_MS),
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CA_FILE": str(certs.other_ca_file),
            },
        )
    assert result.exit_code == Exit.KAFKA_UNAVAILABLE, result.output
    assert "is not trusted" in result.stderr
    assert "KAFKA_SSL_CA_FILE" in result.stderr
