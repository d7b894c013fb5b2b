"""``make run``: the whole voicebus stack on this machine.

Starts the embedded Kafka-protocol broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), the
Exotel sandbox (unless ``EXOTEL_ACCOUNT_SID`` is set), the ingress and the executor, waits
until each is ready, prints where everything is, and stops it all on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path

from services.common.embedded_broker import EmbeddedBroker, port_is_free
from services.stack.processes import ServiceProcess

RUN_DIR = Path(".run")
STACK_ENV = RUN_DIR / "stack.env"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main() -> int:
    env: dict[str, str] = {}
    embedded: EmbeddedBroker | None = None
    children: list[tuple[ServiceProcess, str]] = []
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        wanted = _port("EMBEDDED_BROKER_PORT", 19092)
        embedded = EmbeddedBroker(port=wanted if port_is_free(wanted) else None).start()
        env["KAFKA_BOOTSTRAP_SERVERS"] = embedded.bootstrap_servers
        env["KAFKA_ENABLE_IDEMPOTENCE"] = "false"
    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ["KAFKA_BOOTSTRAP_SERVERS"]
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
        STACK_ENV.write_text(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}\n")
        _print_summary(
            bootstrap=bootstrap,
            embedded=embedded is not None,
            sandbox=use_sandbox,
            ports={
                "sandbox": sandbox_port,
                "ingress": ingress_port,
                "executor": executor_port,
                "metrics": metrics_port,
            },
            token=token,
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
        if embedded is not None:
            embedded.stop()
        STACK_ENV.unlink(missing_ok=True)
    return 0


def _print_summary(
    *, bootstrap: str, embedded: bool, sandbox: bool, ports: dict[str, int], token: str
) -> None:
    sandbox_port, ingress_port, executor_port = (
        ports["sandbox"],
        ports["ingress"],
        ports["executor"],
    )
    broker = f"{bootstrap} ({'embedded Tansu' if embedded else 'KAFKA_BOOTSTRAP_SERVERS'})"
    exotel = f"sandbox http://127.0.0.1:{sandbox_port}" if sandbox else "Exotel (EXOTEL_* set)"
    print(
        f"""
voicebus is running (Ctrl-C stops everything)
  Kafka       {broker}
  Exotel      {exotel}
  ingress     http://127.0.0.1:{ingress_port}/exotel/callbacks/<CALLBACK_TOKEN>
  executor    http://127.0.0.1:{executor_port}/metrics  /readyz
  metrics     http://127.0.0.1:{ports["metrics"]}/metrics (business and SRE metrics from the facts)
  CALLBACK_TOKEN={token}

Send a first command and watch its facts, from another terminal:
  make demo
or publish your own:
  echo '{{"command_id":"hello-1","from":"+919876543210","to":"+919812345678",'\\
'"caller_id":"08047112345"}}' | kcat -P -b {bootstrap} -t call.connect -k +919876543210
  kcat -C -b {bootstrap} -t call.connect.result -t call.status -o beginning
""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
