"""A hook the client runs after the rate limiter grants a slot, just before sending.

The executor records its intent there (see services/executor/ledger.py): as late as
possible, so a command stopped while waiting for the limiter is not mistaken for one whose
request may have reached Exotel. A context variable keeps it per task, with no plumbing
through every client method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar

BeforeSend = Callable[[], Awaitable[None]]

before_send: ContextVar[BeforeSend | None] = ContextVar("exotel_before_send", default=None)
