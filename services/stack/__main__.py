"""``make run``: the whole voicebus stack on this machine.

Starts a Kafka broker chosen by services/brokers/choice.py (none when
``KAFKA_BOOTSTRAP_SERVERS`` is set; else Apache Kafka from its jars where Java is, else the
embedded Tansu broker), the Exotel sandbox (unless ``EXOTEL_ACCOUNT_SID`` is set), the
ingress, the executor and the metrics service, waits until each is ready, prints where
everything is, and stops it all on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path

from services.brokers import choice as broker_choice
from services.brokers.apache_kafka import ApacheKafkaError
from services.brokers.tansu import EmbeddedBrokerError
from services.common.callback_signature import CallbackSigner
from services.executor.mapping.callbacks import CallbackTarget
from services.stack.kcat import TANSU_NOTE, kcat_example
from services.stack.processes import ServiceProcess

RUN_DIR = Path(".run")
STACK_ENV = RUN_DIR / "stack.env"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main() -> int:
    try:
        chosen = broker_choice.choose()
    except broker_choice.BrokerChoiceError as exc:
        print(f"voicebus: {exc}", file=sys.stderr)
        return 2
    print(chosen.describe(), flush=True)
    data = RUN_DIR / "kafka"
    shutil.rmtree(data, ignore_errors=True)  # a fresh local broker each run, like Tansu's
    with contextlib.ExitStack() as stack:
        try:
            broker = stack.enter_context(
                broker_choice.run(chosen, port=_port("LOCAL_KAFKA_PORT", 19092), directory=data)
            )
        except (ApacheKafkaError, EmbeddedBrokerError) as exc:
            print(f"voicebus: the broker did not start: {exc}", file=sys.stderr)
            return 1
        return _run_stack(broker)


def _run_stack(broker: broker_choice.RunningBroker) -> int:
    children: list[tuple[ServiceProcess, str]] = []
    bootstrap = broker.bootstrap_servers
    env: dict[str, str] = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    if broker.kind != "external":
        env["KAFKA_ENABLE_IDEMPOTENCE"] = str(broker.transactions).lower()
    token = os.environ.get("CALLBACK_TOKEN") or secrets.token_urlsafe(24)
    ingress_port = _port("INGRESS_PORT", 8080)
    executor_port = _port("EXECUTOR_PORT", 9101)
    sandbox_port = _port("SANDBOX_PORT", 8090)
    metrics_port = _port("METRICS_PORT", 9100)
    env["CALLBACK_TOKEN"] = token
    env["CALLBACK_SIGNING_SECRET"] = os.environ.get(
        "CALLBACK_SIGNING_SECRET"
    ) or secrets.token_urlsafe(32)
    env.setdefault(
        "CALLBACK_PUBLIC_URL",
        os.environ.get("CALLBACK_PUBLIC_URL", f"http://127.0.0.1:{ingress_port}"),
    )
    use_sandbox = not os.environ.get("EXOTEL_ACCOUNT_SID")
    if use_sandbox:
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        env |= {
            "EXOTEL_ACCOUNT_SID": "voicebus-sandbox",
            "EXOTEL_API_KEY": "sandbox-key",
            "EXOTEL_API_TOKEN": "sandbox-token",
            "EXOTEL_BASE_URL": sandbox_url,
            "EXOTEL_CCM_BASE_URL": sandbox_url,
        }
        children.append(
            (
                ServiceProcess("services.sandbox", {}, port=sandbox_port, keep_log=False),
                "/_sandbox/health",
            )
        )
    children += [
        (ServiceProcess("services.ingress", env, port=ingress_port, keep_log=False), "/readyz"),
        (ServiceProcess("services.executor", env, port=executor_port, keep_log=False), "/readyz"),
        (ServiceProcess("services.metrics", env, port=metrics_port, keep_log=False), "/readyz"),
    ]
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        for child, ready_path in children:
            child.start(ready_path=ready_path, timeout=60)
        RUN_DIR.mkdir(exist_ok=True)
        STACK_ENV.write_text(
            f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}\n"
            f"KAFKA_ENABLE_IDEMPOTENCE={env.get('KAFKA_ENABLE_IDEMPOTENCE', 'true')}\n"
            f"VOICEBUS_BROKER_KIND={broker.kind}\n"
        )
        _print_summary(
            bootstrap=bootstrap,
            broker=broker,
            sandbox=use_sandbox,
            ports={
                "sandbox": sandbox_port,
                "ingress": ingress_port,
                "executor": executor_port,
                "metrics": metrics_port,
            },
            token=token,
            passthru=CallbackTarget(
                env["CALLBACK_PUBLIC_URL"],
                token,
                CallbackSigner(env["CALLBACK_SIGNING_SECRET"]),
            ).passthru_url("default"),
        )
        while not stopping:
            for child, _ in children:
                if child.process is not None and child.process.poll() is not None:
                    print(f"voicebus: {child.name} exited ({child.process.returncode}); stopping")
                    stopping = True
            time.sleep(0.2)
    except RuntimeError as exc:
        print(f"voicebus: {exc}", file=sys.stderr)
        return 1
    finally:
        for child, _ in reversed(children):
            child.stop()
        STACK_ENV.unlink(missing_ok=True)
    return 0


def _print_summary(
    *,
    bootstrap: str,
    broker: broker_choice.RunningBroker,
    sandbox: bool,
    ports: dict[str, int],
    token: str,
    passthru: str | None = None,
) -> None:
    sandbox_port, ingress_port, executor_port = (
        ports["sandbox"],
        ports["ingress"],
        ports["executor"],
    )
    kafka = f"{bootstrap} ({broker.choice.label})"
    tansu = broker.kind == "tansu"
    librdkafka = f"\n  note        {_wrap(TANSU_NOTE)}" if tansu else ""
    exotel = f"sandbox http://127.0.0.1:{sandbox_port}" if sandbox else "Exotel (EXOTEL_* set)"
    passthru_line = (
        f"\n  passthru    {passthru}"
        "\n              (a call flow's Passthru URL: inbound calls; `voicebus passthru-url`)"
        if passthru
        else ""
    )
    kcat = textwrap.indent(kcat_example(bootstrap), "  ")
    kcat_intro = (
        "or publish your own with kcat (needs a real Kafka: not Tansu, see the note above):"
        if tansu
        else "or publish your own with kcat, and read its result and call.status facts:"
    )
    print(
        f"""
voicebus is running (Ctrl-C stops everything)
  Kafka       {kafka}{librdkafka}
  Exotel      {exotel}
  ingress     http://127.0.0.1:{ingress_port}/exotel/callbacks/<CALLBACK_TOKEN>{passthru_line}
  executor    http://127.0.0.1:{executor_port}/metrics  /readyz
  metrics     http://127.0.0.1:{ports["metrics"]}/metrics (business and SRE metrics from the facts)
  CALLBACK_TOKEN={token}

Send a first command and watch its facts, from another terminal:
  make demo
{kcat_intro}
{kcat}""",
        flush=True,
    )


def _wrap(note: str) -> str:
    """The note under the Kafka line, wrapped to the banner's value column."""
    return "\n              ".join(textwrap.wrap(note, width=76))


if __name__ == "__main__":
    sys.exit(main())
