"""How every Kafka client voicebus makes reaches a secured cluster, and why it cannot.

* :func:`security_options`: the aiokafka keyword options (``security_protocol``,
  ``ssl_context``, ``sasl_*``) from :class:`KafkaSettings`. Every aiokafka client (admin,
  consumers, producers) is built with them;
* :func:`broker_security`: the same options as the FastStream security object the
  ``KafkaBroker`` takes (``make_broker``);
* :func:`check_access`: connect to the bootstrap servers as the clients will (TLS, SASL,
  one metadata request), within ``KAFKA_REQUEST_TIMEOUT_MS``, and raise
  :class:`KafkaAccessError` naming the setting to fix: a wrong password, an untrusted
  certificate or a bootstrap address that never answers is said so at start, not retried
  silently (aiokafka itself only says "Unable to bootstrap").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import sys
from typing import Any

import structlog
from aiokafka.conn import AIOKafkaConnection, collect_hosts
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from services.common.logging import register_secrets
from services.common.settings import KafkaSettings

#: FastStream's security class for each SASL mechanism.
_SASL_SECURITY: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "PLAIN": SASLPlaintext,
    "SCRAM-SHA-256": SASLScram256,
    "SCRAM-SHA-512": SASLScram512,
}
_RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0)
#: No attempt is started with less time than this left (it could only time out).
_SHORTEST_ATTEMPT_SECONDS = 0.25
#: How long a spooling service (the ingress) lets the start-up check delay its start.
SPOOLING_CHECK_SECONDS = 5.0

log = structlog.get_logger(__name__)


class KafkaAccessError(KafkaError):  # type: ignore[misc]
    """Kafka cannot be used with these settings; ``setting`` names the one to look at.

    A :class:`~aiokafka.errors.KafkaError`, so code that retries Kafka failures retries
    this one too; the message never holds a secret."""

    def __init__(self, setting: str, message: str, *, fatal: bool = True) -> None:
        super().__init__(message)
        self.setting = setting
        self.message = message
        #: A setting is wrong (credentials, TLS, protocol): trying again cannot help.
        self.fatal = fatal

    def __str__(self) -> str:
        return self.message


def security_options(settings: KafkaSettings) -> dict[str, Any]:
    """The aiokafka keyword options of every client voicebus makes.

    The secrets handed over (``KAFKA_SASL_PASSWORD``, ``KAFKA_SSL_KEY_PASSWORD``) are
    registered for log redaction here."""
    register_secrets(settings.secrets())
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.uses_tls:
        options["ssl_context"] = settings.ssl_context()
    if settings.uses_sasl:
        password = settings.sasl_password  # never None here: the settings' validator insists
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
    return options


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    """:func:`security_options` as the security object FastStream's ``KafkaBroker`` takes."""
    options = security_options(settings)
    context: ssl.SSLContext | None = options.get("ssl_context")
    if "sasl_mechanism" in options:
        security = _SASL_SECURITY[options["sasl_mechanism"]]
        return security(
            options["sasl_plain_username"],
            options["sasl_plain_password"],
            ssl_context=context,
            use_ssl=context is not None,
        )
    if context is not None:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return None


async def check_access(
    settings: KafkaSettings, *, wait: bool = True, within: float | None = None
) -> None:
    """Return once one bootstrap server accepted a connection made as every client makes it
    (TLS handshake, SASL authentication, a metadata request); else raise
    :class:`KafkaAccessError` naming the setting to fix.

    A refused or unanswered connection is tried again (``wait``) until ``within`` seconds
    (default ``KAFKA_REQUEST_TIMEOUT_MS``) have passed: a broker that is still starting is
    waited for, one that never answers is reported in bounded time. Authentication and
    TLS failures are reported at once: retrying cannot mend a setting."""
    budget = within if within is not None else settings.request_timeout_ms / 1000
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    options = security_options(settings)
    hosts = [(host, port) for host, port, _ in collect_hosts(settings.bootstrap_servers)]
    for attempt in itertools.count():
        left = deadline - loop.time()
        outcomes = await _try_hosts(settings, hosts, options, left)
        if outcomes is None:
            return
        fatal = [e for e in outcomes if e.fatal]
        if fatal:
            raise fatal[0]
        pause = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
        if not wait or loop.time() + pause + _SHORTEST_ATTEMPT_SECONDS >= deadline:
            raise unreachable(settings, budget, outcomes)
        await asyncio.sleep(pause)


def refuse_to_start(service: str, settings: KafkaSettings, *, spooling: bool = False) -> bool:
    """At a service's start, before it serves: whether Kafka cannot be used with these
    settings; if so, why is logged and printed, naming the setting, and the service exits.

    ``spooling`` (the ingress, whose spool keeps callbacks while Kafka is away): only a
    wrong setting (credentials, TLS, protocol) refuses the start; a broker that does not
    answer (yet) is left to the spool, after one try of at most ``SPOOLING_CHECK_SECONDS``."""
    within = None
    if spooling:
        within = min(settings.request_timeout_ms / 1000, SPOOLING_CHECK_SECONDS)
    try:
        asyncio.run(check_access(settings, wait=not spooling, within=within))
    except KafkaAccessError as exc:
        problem = exc
    else:
        return False
    if spooling and not problem.fatal:
        log.warning("kafka.not_answering", setting=problem.setting, error=problem.message)
        return False
    log.error("kafka.unusable", setting=problem.setting, error=problem.message)
    print(f"{service}: cannot use Kafka ({problem.setting}): {problem.message}", file=sys.stderr)
    return True


async def _try_hosts(
    settings: KafkaSettings,
    hosts: list[tuple[str, int]],
    options: dict[str, Any],
    within: float,
) -> list[KafkaAccessError] | None:
    """Every bootstrap server at once: ``None`` when one worked, else why each did not."""
    tasks = [
        asyncio.create_task(_try_host(settings, host, port, options, within))
        for host, port in hosts
    ]
    errors: list[KafkaAccessError] = []
    try:
        for done in asyncio.as_completed(tasks):
            error = await done
            if error is None:
                return None
            errors.append(error)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return errors


async def _try_host(
    settings: KafkaSettings, host: str, port: int, options: dict[str, Any], within: float
) -> KafkaAccessError | None:
    # The connection object is made here, not by aiokafka's create_conn, so that it is
    # closed however the attempt ends (a timeout may cut it anywhere).
    conn = AIOKafkaConnection(
        host,
        port,
        client_id=f"{settings.client_id}-check",
        request_timeout_ms=max(int(within * 1000), 1),
        **options,
    )
    try:
        async with asyncio.timeout(within):
            await conn.connect()
            await conn.send(MetadataRequest([]))
    except (OSError, KafkaError, TimeoutError, ssl.SSLError) as exc:
        return explain(exc, settings, f"{host}:{port}")
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return None


def explain(exc: BaseException, settings: KafkaSettings, address: str) -> KafkaAccessError:
    """What a failed connection to ``address`` means, as the setting to look at."""
    protocol = f"KAFKA_SECURITY_PROTOCOL={settings.security_protocol}"
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _untrusted(exc, settings, address)
    if isinstance(exc, ssl.SSLError):
        return _tls_refused(exc, settings, address)
    if isinstance(exc, SaslAuthenticationFailed):
        return KafkaAccessError(
            "KAFKA_SASL_PASSWORD",
            f"the broker at {address} refused the credentials KAFKA_SASL_USERNAME="
            f"{settings.sasl_username} and KAFKA_SASL_PASSWORD ({settings.sasl_mechanism}): "
            f"{_broker_says(exc)}",
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return KafkaAccessError(
            "KAFKA_SASL_MECHANISM",
            f"the broker at {address} does not offer KAFKA_SASL_MECHANISM="
            f"{settings.sasl_mechanism} ({_broker_says(exc)})",
        )
    if isinstance(exc, IllegalSaslStateError):
        return KafkaAccessError(
            "KAFKA_SECURITY_PROTOCOL",
            f"the listener at {address} does not use SASL ({protocol}; {_broker_says(exc)})",
        )
    if isinstance(cause, ssl.SSLError):
        return explain(cause, settings, address)
    if isinstance(exc, ConnectionResetError) and settings.uses_tls:
        return KafkaAccessError(
            "KAFKA_SECURITY_PROTOCOL",
            f"{address} reset the TLS handshake: is that listener TLS? ({protocol})",
        )
    if isinstance(exc, TimeoutError):
        return KafkaAccessError(
            "KAFKA_BOOTSTRAP_SERVERS", f"{address} did not answer in time", fatal=False
        )
    if isinstance(exc, OSError):
        return KafkaAccessError(
            "KAFKA_BOOTSTRAP_SERVERS",
            f"cannot connect to {address} ({exc.strerror or type(exc).__name__})",
            fatal=False,
        )
    # A connection that opened and was then closed: what the listener expects (TLS, SASL)
    # is not what the client speaks, or the broker is going away.
    sasl = f" with KAFKA_SASL_MECHANISM={settings.sasl_mechanism}" if settings.uses_sasl else ""
    return KafkaAccessError(
        "KAFKA_SECURITY_PROTOCOL",
        f"{address} closed the connection: does its listener expect {protocol}{sasl}?",
        fatal=False,
    )


def _untrusted(
    exc: ssl.SSLCertVerificationError, settings: KafkaSettings, address: str
) -> KafkaAccessError:
    reason = exc.verify_message or str(exc)
    if "mismatch" in reason.lower():
        return KafkaAccessError(
            "KAFKA_BOOTSTRAP_SERVERS",
            f"the TLS certificate of {address} does not name that host ({reason}): list the "
            "brokers in KAFKA_BOOTSTRAP_SERVERS by a name their certificates carry",
        )
    trusted = (
        f"KAFKA_SSL_CA_FILE={settings.ssl_ca_file}"
        if settings.ssl_ca_file is not None
        else "the system's trusted CAs (KAFKA_SSL_CA_FILE is unset)"
    )
    return KafkaAccessError(
        "KAFKA_SSL_CA_FILE",
        f"the TLS certificate of the broker at {address} is not trusted ({reason}): checked "
        f"against {trusted}; set KAFKA_SSL_CA_FILE to the CA that signed the brokers' "
        "certificates",
    )


def _tls_refused(exc: ssl.SSLError, settings: KafkaSettings, address: str) -> KafkaAccessError:
    """A TLS handshake that failed for another reason than the broker's certificate."""
    reason = str(exc.reason or exc)
    if "ALERT" in reason.upper() and settings.ssl_cert_file is None:
        return KafkaAccessError(
            "KAFKA_SSL_CERT_FILE",
            f"the broker at {address} wants a client certificate (mutual TLS; it said "
            f"{reason}): set KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE",
        )
    if "ALERT" in reason.upper():
        return KafkaAccessError(
            "KAFKA_SSL_CERT_FILE",
            f"the broker at {address} refused the client certificate KAFKA_SSL_CERT_FILE="
            f"{settings.ssl_cert_file} ({reason}): was it signed by a CA the brokers trust?",
        )
    return KafkaAccessError(
        "KAFKA_SECURITY_PROTOCOL",
        f"the TLS handshake with {address} failed ({reason}): is that listener TLS? "
        f"(KAFKA_SECURITY_PROTOCOL={settings.security_protocol})",
    )


def unreachable(
    settings: KafkaSettings, waited: float, errors: list[KafkaAccessError]
) -> KafkaAccessError:
    """No bootstrap server answered within ``waited`` seconds; the setting named is the one
    every failure points at (the bootstrap list unless they agree on another)."""
    settings_named = {e.setting for e in errors}
    setting = settings_named.pop() if len(settings_named) == 1 else "KAFKA_BOOTSTRAP_SERVERS"
    why = "; ".join(dict.fromkeys(e.message for e in errors)) or "no answer"
    return KafkaAccessError(
        setting,
        f"no Kafka broker answered at KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap_servers} "
        f"within {waited:g}s (KAFKA_REQUEST_TIMEOUT_MS={settings.request_timeout_ms}): {why}",
        fatal=False,
    )


def _broker_says(exc: BaseException) -> str:
    """The broker's own words (aiokafka passes the connection object for some errors)."""
    said = exc.args[0] if exc.args else None
    if isinstance(said, str) and said:
        return said
    return str(getattr(exc, "description", "") or type(exc).__name__)
