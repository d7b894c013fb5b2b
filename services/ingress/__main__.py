"""``python -m services.ingress``: the webhook ingress, configured by the environment.

What exists once the app is built is frozen out of the garbage collector's view
(``serve`` calls :func:`services.common.http.freeze_what_lives_forever`, for every
service). Stops cleanly on SIGTERM/SIGINT: uvicorn finishes in-flight callbacks, then the
lifespan closes the Kafka producer (flushing what was accepted).
"""

from __future__ import annotations

import os
import sys

import structlog
from pydantic import ValidationError

from services.common.http import serve
from services.common.kafka_security import refuse_to_start
from services.common.logging import configure_logging, register_secrets
from services.ingress.app import create_app
from services.ingress.settings import IngressSettings, describe_errors


def load_settings() -> IngressSettings | str:
    """The settings, or what is wrong with them (never echoing a value)."""
    try:
        return IngressSettings()  # values come from the environment
    except ValidationError as exc:
        return describe_errors(exc)


def main() -> int:
    configure_logging("ingress", level=os.environ.get("LOG_LEVEL", "INFO"))
    log = structlog.get_logger("services.ingress")
    settings = load_settings()
    if isinstance(settings, str):
        log.error("ingress.config_invalid", error=settings)
        print(f"ingress: invalid configuration: {settings}", file=sys.stderr)
        return 2
    register_secrets(settings.secrets())
    if refuse_to_start("ingress", settings.kafka, spooling=True):
        return 2
    log.info(
        "ingress.starting",
        host=settings.http_host,
        port=settings.http_port,
        kafka=settings.kafka.bootstrap_servers,
        max_body_bytes=settings.max_body_bytes,
        publish_timeout_seconds=settings.publish_timeout_seconds,
        spool_dir=str(settings.spool_dir),
        spool_after_seconds=settings.spool_after_seconds,
        kafka_linger_ms=settings.kafka_linger_ms,
        exotel_timezone=settings.exotel_timezone,
        token_rotation=settings.previous_callback_token is not None,
        signing_rotation=settings.previous_callback_signing_secret is not None,
    )

    app = create_app(settings)
    serve(app, host=settings.http_host, port=settings.http_port)
    log.info("ingress.exited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
