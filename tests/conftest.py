"""Suite-wide fixtures: one real broker per session (see tests/support/broker.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from services.common.settings import KafkaSettings
from tests.support.broker import SuiteBroker, chosen_broker, test_broker
from tests.support.facts import SUITE_TOPIC_PARTITIONS

BROKER_FIXTURES = {"broker", "kafka_settings", "kafka_env"}


def pytest_report_header(config: pytest.Config) -> str:
    """The one line that says which broker the suite runs on, and why."""
    return chosen_broker().describe()


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _uses_a_broker(item: pytest.Item) -> bool:
    return bool(BROKER_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(tryfirst=True)  # before xdist names the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One xdist group per module (its module-scoped fixtures are set up once), except the
    fault-injection tests, which share one group: run one after another on one worker,
    they do not starve each other's 3 s Kafka sessions of CPU. With
    ``VOICEBUS_BROKER_TESTS_ONLY=1`` (CI's second pass, on Tansu) only the tests that
    use a broker; the rest do not depend on which one runs."""
    # Collection order is kept: the fault-injection tests leave poison records and long
    # histories on the worker's broker; run first, they made later tests (the CLI's dlq
    # list, the metrics service, the call watch's rebuild) slow or fail.
    faults = {_module(item) for item in items if item.get_closest_marker("reliability")}
    for item in items:
        module = _module(item)
        item.add_marker(pytest.mark.xdist_group("reliability" if module in faults else module))
    if os.environ.get("VOICEBUS_BROKER_TESTS_ONLY") != "1":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if _uses_a_broker(item) else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture(scope="session")
def broker() -> Iterator[SuiteBroker]:
    with test_broker() as running:
        yield running


@pytest.fixture(scope="session")
def kafka_settings(broker: SuiteBroker) -> KafkaSettings:
    """Settings for services under test: short group timeouts, a few partitions."""
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        enable_idempotence=broker.supports_idempotence,
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
        topic_partitions=SUITE_TOPIC_PARTITIONS,
    )


@pytest.fixture(scope="session")
def kafka_env(kafka_settings: KafkaSettings) -> dict[str, str]:
    """The same settings as environment variables, for services run as subprocesses."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "KAFKA_ENABLE_IDEMPOTENCE": str(kafka_settings.enable_idempotence).lower(),
        "KAFKA_SESSION_TIMEOUT_MS": str(kafka_settings.session_timeout_ms),
        "KAFKA_HEARTBEAT_INTERVAL_MS": str(kafka_settings.heartbeat_interval_ms),
        "KAFKA_TOPIC_PARTITIONS": str(kafka_settings.topic_partitions),
    }
