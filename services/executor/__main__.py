"""``python -m services.executor``: consume commands, call Exotel, publish results."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from services.common.http import serve
from services.common.kafka_security import refuse_to_start
from services.common.logging import configure_logging, register_secrets
from services.executor.app import create_app
from services.executor.settings import ExecutorSettings
from services.exotel.accounts import ExotelConfigError


def main() -> int:
    configure_logging("executor")
    try:
        settings = ExecutorSettings()
        accounts = settings.exotel.accounts()
    except (ValidationError, ExotelConfigError) as exc:
        print(f"executor: configuration error: {exc}", file=sys.stderr)
        return 2
    register_secrets([settings.callback_token.get_secret_value()])
    for account in accounts.values():
        register_secrets(account.secrets())
    if not accounts:
        print("executor: no Exotel account configured (set EXOTEL_ACCOUNT_SID...)", file=sys.stderr)
        return 2
    if refuse_to_start("executor", settings.kafka):
        return 2
    serve(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        graceful_seconds=settings.shutdown_grace_seconds + 5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
