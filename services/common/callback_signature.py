"""HMAC-SHA256 over a status callback's correlation parameters: unforgeable callback URLs.

Exotel does not sign its callbacks. The executor names a callback URL per command
(``…/exotel/callbacks/{token}?command_id=…&account=…&api=…``); this module adds
``sig``, an HMAC-SHA256 of those parameters under ``CALLBACK_SIGNING_SECRET``. The ingress
recomputes it and refuses (401) a callback whose ``sig`` is missing or does not match, so
knowing the path token is not enough to attribute a callback to a command of one's choosing.

During a rotation the ingress also accepts signatures under
``CALLBACK_SIGNING_SECRET_PREVIOUS``; the executor always signs with the current secret.

The signed text is canonical JSON of ``[[name, value], …]`` for every name in
:data:`SIGNED_PARAMS` (a missing parameter signs as ``null``), so a value containing a
separator cannot make two different parameter sets sign alike. Comparisons are constant
time, every secret is tried (no early exit), and nothing here logs.

``python -m services.common.callback_signature command_id=… account=… api=…`` prints the
signed query string (reads the secret from ``CALLBACK_SIGNING_SECRET``), for a callback
URL configured by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlencode

SIGNATURE_PARAM: Final = "sig"
SIGNED_PARAMS: Final = ("command_id", "account", "api")
MIN_SECRET_LENGTH: Final = 32
SIGNATURE_CHARS: Final = 43  # base64url of 32 bytes, without padding
_VERSION: Final = b"voicebus-callback-v1\n"


def check_secret(secret: str) -> str:
    """``secret`` when it is long enough; never echoes it."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters long")
    return secret


def canonical(params: Mapping[str, str | None]) -> bytes:
    """The bytes that are signed: the signed parameters in a fixed order, as JSON."""
    pairs = [[name, params.get(name)] for name in SIGNED_PARAMS]
    return _VERSION + json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", errors="surrogateescape"
    )


def _mac(secret: bytes, params: Mapping[str, str | None]) -> bytes:
    return hmac.new(secret, canonical(params), hashlib.sha256).digest()


class CallbackSigner:
    """Signs with the current secret; verifies against the current and the previous one."""

    __slots__ = ("_accepted", "_current")

    def __init__(self, secret: str, previous: str | None = None) -> None:
        self._current = secret.encode()
        self._accepted = tuple(s.encode() for s in (secret, previous) if s)

    def __repr__(self) -> str:  # never the secrets
        return f"CallbackSigner(secrets={len(self._accepted)})"

    def sign(self, params: Mapping[str, str | None]) -> str:
        """``sig`` for ``params`` (only :data:`SIGNED_PARAMS` count)."""
        return base64.urlsafe_b64encode(_mac(self._current, params)).rstrip(b"=").decode()

    def signed(self, params: Mapping[str, str]) -> dict[str, str]:
        """``params`` plus their ``sig``."""
        return {**params, SIGNATURE_PARAM: self.sign(params)}

    def verify(self, params: Mapping[str, str | None], signature: str | None) -> bool:
        """Whether ``signature`` is ``params``' under any accepted secret (constant time)."""
        if signature is None or len(signature) != SIGNATURE_CHARS:
            return False
        try:
            offered = base64.urlsafe_b64decode(signature + "=")
        except ValueError:
            return False
        matches = [hmac.compare_digest(offered, _mac(key, params)) for key in self._accepted]
        return any(matches)


def signed_query(signer: CallbackSigner, pairs: Iterable[tuple[str, str]]) -> str:
    """A query string of ``pairs`` with its ``sig``."""
    return urlencode(signer.signed(dict(pairs)))


def main(argv: list[str]) -> int:
    secret = os.environ.get("CALLBACK_SIGNING_SECRET", "")
    try:
        check_secret(secret)
    except ValueError as exc:
        print(f"CALLBACK_SIGNING_SECRET {exc}", file=sys.stderr)
        return 2
    pairs = [arg.partition("=")[::2] for arg in argv]
    unknown = [name for name, _ in pairs if name not in SIGNED_PARAMS]
    if unknown:
        print(f"unknown parameter(s) {unknown}; expected {list(SIGNED_PARAMS)}", file=sys.stderr)
        return 2
    print(signed_query(CallbackSigner(secret), pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
