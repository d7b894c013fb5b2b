"""Where Exotel sends a command's status callbacks (the ingress's URL with correlation), and
the URL a call flow's Passthru applet is given (``voicebus passthru-url``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

from services.common.callback_signature import CallbackSigner

CallbackContentType = Literal["multipart/form-data", "application/json"]


@dataclass(frozen=True)
class CallbackTarget:
    """Where Exotel sends status callbacks for a command.

    With a ``signer`` the correlation parameters carry their HMAC (``sig``): the ingress
    refuses callbacks whose parameters were not set by an executor holding the secret.
    """

    public_url: str
    token: str
    signer: CallbackSigner | None = field(default=None, repr=False)

    def url(self, **correlation: str) -> str:
        """A command's status-callback URL: ``.../exotel/callbacks/{token}?...&sig=...``."""
        return self._signed("callbacks", correlation)

    def passthru_url(self, account: str) -> str:
        """The URL to paste into a call flow's Passthru applet on the Exotel dashboard:
        ``.../exotel/passthru/{token}?account=...&sig=...`` (Exotel appends the call's
        parameters). ``account`` names the configured account whose calls the flow gets:
        the call watch polls their call details with it."""
        return self._signed("passthru", {"account": account})

    def _signed(self, endpoint: str, correlation: dict[str, str]) -> str:
        base = f"{self.public_url.rstrip('/')}/exotel/{endpoint}/{self.token}"
        if self.signer is not None:
            correlation = self.signer.signed(correlation)
        return f"{base}?{urlencode(correlation)}" if correlation else base
