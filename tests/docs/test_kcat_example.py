"""The kcat example is one text: README.md shows it and ``make run``'s banner prints it
(tests/integration/test_kcat.py runs it); both say librdkafka clients need a real Kafka."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from services.brokers.choice import BrokerChoice, BrokerKind, RunningBroker
from services.stack.__main__ import _print_summary
from services.stack.kcat import README_BOOTSTRAP, kcat_example

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def banner(kind: BrokerKind, bootstrap: str, capsys: pytest.CaptureFixture[str]) -> str:
    _print_summary(
        bootstrap=bootstrap,
        broker=RunningBroker(bootstrap, BrokerChoice(kind, "chosen"), transactions=False),
        sandbox=True,
        ports={"sandbox": 8090, "ingress": 8080, "executor": 9101, "metrics": 9100},
        token="token",
    )
    return capsys.readouterr().out


def test_the_readme_shows_the_kcat_example_make_run_prints() -> None:
    assert f"```sh\n{kcat_example()}```" in README


@pytest.mark.parametrize("kind", ["apache-kafka", "tansu"])
def test_the_banner_prints_the_kcat_example_with_its_own_broker(
    kind: BrokerKind, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = banner(kind, "127.0.0.1:29092", capsys)
    assert textwrap.indent(kcat_example("127.0.0.1:29092"), "  ") in printed
    assert README_BOOTSTRAP not in printed


def test_on_tansu_the_banner_says_librdkafka_clients_need_a_real_kafka(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printed = banner("tansu", README_BOOTSTRAP, capsys)
    assert "Tansu cannot serve librdkafka clients (kcat" in printed
    assert "needs a real Kafka" in printed


def test_on_apache_kafka_the_banner_has_no_tansu_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "Tansu" not in banner("apache-kafka", README_BOOTSTRAP, capsys)


def test_the_readme_says_librdkafka_clients_need_a_real_kafka() -> None:
    example = README.index(kcat_example())
    note = README.index("librdkafka clients cannot talk to", example)
    assert "Tansu" in README[example:note]
    assert note - example < 2000  # beside the example, not elsewhere


def test_the_banner_prints_the_passthru_url_of_the_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "http://127.0.0.1:8080/exotel/passthru/token?account=default&sig=abc"
    _print_summary(
        bootstrap="127.0.0.1:29092",
        broker=RunningBroker(
            "127.0.0.1:29092", BrokerChoice("apache-kafka", "chosen"), transactions=False
        ),
        sandbox=True,
        ports={"sandbox": 8090, "ingress": 8080, "executor": 9101, "metrics": 9100},
        token="token",
        passthru=url,
    )
    assert f"passthru    {url}" in capsys.readouterr().out
