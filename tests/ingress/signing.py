"""Signed callback URLs for the ingress tests (what the executor's CallbackTarget builds)."""

from __future__ import annotations

from urllib.parse import urlencode

from services.common.callback_signature import CallbackSigner

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
PREVIOUS_SIGNING_SECRET = "previous-signing-secret-0123456789abcdef"
SIGNER = CallbackSigner(SIGNING_SECRET)


def signed_query(**correlation: str) -> str:
    """``command_id=…&…&sig=…`` for ``correlation`` (may be empty: just ``sig=…``)."""
    return urlencode(SIGNER.signed(correlation))


def signed_params(**correlation: str) -> list[tuple[str, str]]:
    return list(SIGNER.signed(correlation).items())
