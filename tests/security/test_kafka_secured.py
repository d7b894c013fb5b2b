"""voicebus on a secured Apache Kafka: SASL_SSL with SCRAM, brokers certified by a throwaway CA.

With the right settings a command runs end to end through real processes (sandbox, ingress,
executor, metrics service) and the ``voicebus`` CLI; a wrong password or a CA that did not
sign the brokers' certificates stops every service at start, naming the setting, well within
``KAFKA_REQUEST_TIMEOUT_MS``; the password is never in any service's output."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.brokers.apache_kafka import ApacheKafka
from services.cli.exits import Exit
from services.common.kafka_security import check_access
from services.common.settings import KafkaSettings
from services.sandbox.testing import SandboxServer
from tests.cli.helpers import ainvoke
from tests.integration.stack import executor_env, ingress_env, running_stack
from tests.metrics.scrape import total, wait_for_metrics
from tests.support.network import silent_address
from tests.support.services import START_ALLOWANCE_SECONDS, Exited, ServiceProcess, until_exit
from tests.support.tls import Certificates, secured_kafka

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

USER = "voicebus"
PASSWORD = "scram-right-password-7f3c9a"
WRONG_PASSWORD = "scram-wrong-password-1d8e42"
REQUEST_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class SecuredKafka:
    kafka: ApacheKafka
    certs: Certificates

    def env(self, **overrides: str) -> dict[str, str]:
        """``KAFKA_*`` for a service of this cluster (SCRAM-SHA-512 over TLS)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "KAFKA_ENABLE_IDEMPOTENCE": "true",
            "KAFKA_SESSION_TIMEOUT_MS": "3000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "KAFKA_TOPIC_PARTITIONS": "2",
            "KAFKA_REQUEST_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS),
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD": PASSWORD,
            "KAFKA_SSL_CA_FILE": str(self.certs.ca_file),
            **overrides,
        }


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    directory = tmp_path_factory.mktemp("certs")
    with secured_kafka(directory, protocol="SASL_SSL", users={USER: PASSWORD}) as (kafka, certs):
        yield SecuredKafka(kafka, certs)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as running:
        yield running


def no_password_in(outputs: Mapping[str, str]) -> None:
    leaked = [name for name, text in outputs.items() if PASSWORD in text or WRONG_PASSWORD in text]
    assert not leaked, f"a KAFKA_SASL_PASSWORD is in the output of {leaked}"


def refused_starts(envs: Mapping[str, dict[str, str]]) -> list[Exited]:
    """Each service started with ``envs``: how it exited, within the request timeout."""
    return until_exit(envs, within=REQUEST_TIMEOUT_MS / 1000 + START_ALLOWANCE_SECONDS)


def service_envs(kafka: dict[str, str], sandbox: SandboxServer) -> dict[str, dict[str, str]]:
    return {
        "executor": executor_env(kafka, sandbox, "http://127.0.0.1:9"),
        "ingress": ingress_env(kafka),
        "metrics": {**kafka, "METRICS_GROUP_ID": f"metrics-{uuid.uuid4().hex[:8]}"},
    }


def assert_each_names(refusals: list[Exited], setting: str) -> None:
    for refusal in refusals:
        assert refusal.returncode == 2, f"{refusal.service} did not stop:\n{refusal.output[-3000:]}"
        assert f"cannot use Kafka ({setting})" in refusal.output, refusal.output[-3000:]
    no_password_in({r.service: r.output for r in refusals})


async def test_the_right_credentials_run_a_command_end_to_end(secured: SecuredKafka) -> None:
    env = secured.env()
    with (
        running_stack(env) as stack,
        ServiceProcess(
            "metrics", {**env, "METRICS_GROUP_ID": f"metrics-{uuid.uuid4().hex[:8]}"}
        ) as metrics,
    ):
        command_id = f"secured-{uuid.uuid4().hex[:10]}"
        fields = {"from": "+919876543210", "to": "+919812345678", "caller_id": "08047112345"}
        sent = await ainvoke(
            [
                "send",
                "call.connect",
                "--command-id",
                command_id,
                *[arg for name, value in fields.items() for arg in ("-F", f"{name}={value}")],
                "--timeout",
                "60",
            ],
            env=env,
        )
        assert sent.exit_code == Exit.OK, sent.output
        assert "call.connect.result: accepted" in sent.stdout
        tailed = await ainvoke(
            [
                *("tail", "--command-id", command_id, "--event-type", "terminal"),
                *("--count", "1", "--timeout", "60", "--json"),
            ],
            env=env,
        )
        assert tailed.exit_code == Exit.OK, tailed.output
        seen = [json.loads(line) for line in tailed.stdout.splitlines() if line.strip()]
        assert [(f["topic"], f["value"]["event_type"]) for f in seen] == [
            ("call.status", "terminal")
        ]
        await wait_for_metrics(
            metrics.url,
            lambda s: (
                total(s, "voicebus_commands_total", outcome="accepted") >= 1
                and total(s, "voicebus_metrics_lag_checks_total", outcome="ok") >= 1
            ),
            timeout=60,
            what="the command counted and a lag check over TLS and SASL",
        )
        outputs = {
            "ingress": stack.ingress.output,
            "executor": stack.executor.output,
            "metrics": metrics.output,
            "cli": sent.stdout + sent.stderr + tailed.stdout + tailed.stderr,
        }
    no_password_in(outputs)


async def test_scram_sha_256_is_accepted_too(secured: SecuredKafka) -> None:
    env = secured.env(KAFKA_SASL_MECHANISM="SCRAM-SHA-256")
    result = await ainvoke(["topics", "--check"], env=env)
    assert result.exit_code == Exit.OK, result.output


def test_a_wrong_password_stops_every_service_at_start(
    secured: SecuredKafka, sandbox: SandboxServer
) -> None:
    refusals = refused_starts(
        service_envs(secured.env(KAFKA_SASL_PASSWORD=WRONG_PASSWORD), sandbox)
    )
    assert_each_names(refusals, "KAFKA_SASL_PASSWORD")
    for refusal in refusals:
        assert f"refused the credentials KAFKA_SASL_USERNAME={USER}" in refusal.output


def test_an_unknown_user_is_refused_the_same_way(
    secured: SecuredKafka, sandbox: SandboxServer
) -> None:
    envs = service_envs(secured.env(KAFKA_SASL_USERNAME="nobody"), sandbox)
    assert_each_names(refused_starts({"executor": envs["executor"]}), "KAFKA_SASL_PASSWORD")


def test_a_ca_that_did_not_sign_the_brokers_stops_every_service_at_start(
    secured: SecuredKafka, sandbox: SandboxServer
) -> None:
    env = secured.env(KAFKA_SSL_CA_FILE=str(secured.certs.other_ca_file))
    refusals = refused_starts(service_envs(env, sandbox))
    assert_each_names(refusals, "KAFKA_SSL_CA_FILE")
    for refusal in refusals:
        assert "is not trusted" in refusal.output


async def test_the_cli_names_a_wrong_password(secured: SecuredKafka) -> None:
    result = await ainvoke(
        ["topics", "--check"], env=secured.env(KAFKA_SASL_PASSWORD=WRONG_PASSWORD)
    )
    assert result.exit_code == Exit.KAFKA_UNAVAILABLE, result.output
    assert "KAFKA_SASL_PASSWORD" in result.stderr
    assert WRONG_PASSWORD not in result.stdout + result.stderr


async def test_a_plaintext_client_is_told_to_check_the_protocol(secured: SecuredKafka) -> None:
    settings = KafkaSettings(
        bootstrap_servers=secured.kafka.bootstrap_servers, request_timeout_ms=2000
    )
    started = time.monotonic()
    with pytest.raises(Exception, match="KAFKA_SECURITY_PROTOCOL=PLAINTEXT") as caught:
        await check_access(settings)
    assert getattr(caught.value, "setting", None) == "KAFKA_SECURITY_PROTOCOL"
    assert time.monotonic() - started < 2 + 1


async def test_a_silent_address_in_the_bootstrap_list_does_not_delay_the_start(
    secured: SecuredKafka,
) -> None:
    with silent_address() as silent:
        env = secured.env()
        settings = KafkaSettings.model_validate(
            {
                "bootstrap_servers": f"{silent},{secured.kafka.bootstrap_servers}",
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": USER,
                "sasl_password": PASSWORD,
                "ssl_ca_file": Path(env["KAFKA_SSL_CA_FILE"]),
            }
        )
        started = time.monotonic()
        await asyncio.wait_for(check_access(settings), REQUEST_TIMEOUT_MS / 1000)
        assert time.monotonic() - started < 2.0
