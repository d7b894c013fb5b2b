"""``python -m services.metrics``: count every fact into Prometheus metrics on /metrics."""

from __future__ import annotations

import os
import sys

from pydantic import ValidationError

from services.common.http import serve
from services.common.kafka_security import refuse_to_start
from services.common.logging import configure_logging
from services.metrics.app import create_app
from services.metrics.settings import MetricsSettings


def main() -> int:
    configure_logging("metrics", level=os.environ.get("LOG_LEVEL", "INFO"))
    try:
        settings = MetricsSettings()
    except ValidationError as exc:
        print(f"metrics: configuration error: {exc}", file=sys.stderr)
        return 2
    if refuse_to_start("metrics", settings.kafka):
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
