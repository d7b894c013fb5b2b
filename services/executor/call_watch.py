"""Missing-callback recovery, the pure part: which accepted calls still await a terminal
status, when to ask Exotel about them, and the ``call.status`` fact a poll becomes.

Exotel's documentation warns that status callbacks can be delayed or lost and advises
falling back to the call details API. The executor's call watch (``call_watch_kafka``)
feeds :class:`CallWatch` from Kafka (``call.connect.result`` accepted, or a ``call.status``
flow event of a call first seen through a Passthru -> watched; ``call.status`` terminal
call event -> cleared) and asks it every few seconds which calls
are :meth:`~CallWatch.due`. Nothing here does I/O or reads the clock: every method takes
``now``.

Schedule of one call (``after`` = ``EXECUTOR_CALL_WATCH_AFTER_SECONDS``)::

    accepted ── after ──► poll #1 ── active ──► +after ──► poll #2 ── active ──► +2·after ...
                                                 (doubling, at most MAX_BACKOFF_SECONDS apart)
                           └─ terminal ──► CallStatusEvent(source="poll") published, cleared
                           └─ error ─────► retried sooner (ERROR_BACKOFF), same give-up time
                           └─ unknown ───► (a call first seen by Passthru that Exotel's call
                                            details of its account do not know) dropped

A call stays watched until ``accepted + MAX_CALL_SECONDS (4 h, the longest time_limit)
+ after``; if Exotel still calls it active then, the watch gives up (logged). Calls
accepted before ``now - horizon`` are forgotten, and so are the sids of finished calls.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from contracts.status import CallStatusEvent, LegStatus
from services.common.call_status import normalise_status
from services.exotel.accounts import ApiVersion
from services.exotel.models import CallDetails

__all__ = [
    "ERROR_BACKOFF_SECONDS",
    "MAX_BACKOFF_SECONDS",
    "MAX_CALL_SECONDS",
    "CallWatch",
    "PollOutcome",
    "WatchPolicy",
    "WatchedCall",
    "poll_event",
    "poll_event_id",
]

#: The longest call Exotel places (``time_limit`` is at most 4 h).
MAX_CALL_SECONDS: Final = 4 * 3600
#: Longest pause between two polls of a call Exotel still calls active.
MAX_BACKOFF_SECONDS: Final = 1800.0
#: First pause after a failed poll (5xx, timeout, 429 beyond the client's own wait).
ERROR_BACKOFF_SECONDS: Final = 30.0

#: ``unknown``: Exotel does not know the call (404) and it was first seen through a
#: Passthru: that account is not the call's (a Passthru URL naming another account, a call
#: of a foreign flow), so it is dropped rather than polled for hours.
PollOutcome = Literal["terminal", "active", "error", "unknown"]
#: Where the watch learnt of a call: an accepted call.connect, or a flow's Passthru.
SeenIn = Literal["result", "flow"]

# Same namespace as the ingress's callback ids; the "poll" in the name keeps them apart.
_EVENT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:voicebus:call.status")


@dataclass(frozen=True)
class WatchPolicy:
    after_seconds: float = 900.0
    horizon_seconds: float = 24 * 3600.0
    max_call_seconds: float = MAX_CALL_SECONDS
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    error_backoff_seconds: float = ERROR_BACKOFF_SECONDS

    def __post_init__(self) -> None:
        if self.after_seconds <= 0 or self.horizon_seconds <= 0:
            raise ValueError("after_seconds and horizon_seconds must be positive")

    def active_backoff(self, polls: int) -> float:
        """Pause after the ``polls``-th poll found the call still active (1, 2, ...)."""
        delay = self.after_seconds * 2.0 ** min(max(polls - 1, 0), 32)
        return min(delay, max(self.max_backoff_seconds, self.after_seconds))

    def error_backoff(self, errors: int) -> float:
        """Pause after the ``errors``-th consecutive failed poll."""
        first = min(self.error_backoff_seconds, self.after_seconds)
        delay = first * 2.0 ** min(max(errors - 1, 0), 32)
        return min(delay, max(self.max_backoff_seconds, self.after_seconds))


@dataclass
class WatchedCall:
    """An accepted call whose terminal status has not been seen yet."""

    call_sid: str
    account: str
    api: ApiVersion
    command_id: str | None
    accepted_at: datetime
    partition: int
    due_at: datetime
    give_up_at: datetime
    polls: int = 0
    errors: int = 0
    seen_in: SeenIn = "result"


@dataclass
class CallWatch:
    """Accepted calls awaiting a terminal status, and the finished ones (so a terminal
    read before its call's acceptance still counts: the two topics are read in parallel)."""

    policy: WatchPolicy = field(default_factory=WatchPolicy)
    _calls: dict[str, WatchedCall] = field(default_factory=dict)
    _finished: dict[str, datetime] = field(default_factory=dict)
    _in_flight: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_sid: object) -> bool:
        return call_sid in self._calls

    def get(self, call_sid: str) -> WatchedCall | None:
        return self._calls.get(call_sid)

    # ------------------------------------------------------------------ facts read

    def accepted(
        self,
        call_sid: str,
        *,
        account: str,
        api: ApiVersion,
        command_id: str | None,
        accepted_at: datetime,
        partition: int,
        now: datetime,
        seen_in: SeenIn = "result",
    ) -> bool:
        """A ``call.connect`` was accepted (or a flow's Passthru reported the call): watch
        it. False when there is nothing to watch (already finished, already watched, or
        older than the horizon)."""
        horizon = timedelta(seconds=self.policy.horizon_seconds)
        if call_sid in self._finished or accepted_at < now - horizon:
            return False
        watched = self._calls.get(call_sid)
        if watched is not None:  # a re-emitted result, a call's next flow notification
            if watched.command_id is None and command_id is not None:
                # its result, read after its flow event: a call voicebus placed
                watched.command_id, watched.api, watched.seen_in = command_id, api, seen_in
            return False
        self._calls[call_sid] = WatchedCall(
            call_sid=call_sid,
            account=account,
            api=api,
            command_id=command_id,
            accepted_at=accepted_at,
            partition=partition,
            due_at=accepted_at + timedelta(seconds=self.policy.after_seconds),
            give_up_at=accepted_at
            + timedelta(seconds=self.policy.max_call_seconds + self.policy.after_seconds),
            seen_in=seen_in,
        )
        return True

    def finished(self, call_sid: str, at: datetime) -> bool:
        """A terminal call event (callback or poll) was read: stop watching the call.
        True when it was being watched."""
        self._finished[call_sid] = max(at, self._finished.get(call_sid, at))
        return self._calls.pop(call_sid, None) is not None

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Partitions revoked: their calls are another replica's now."""
        gone = set(partitions)
        sids = [sid for sid, call in self._calls.items() if call.partition in gone]
        for sid in sids:
            del self._calls[sid]
        return len(sids)

    # ------------------------------------------------------------------ decisions

    def due(self, now: datetime, limit: int | None = None) -> list[WatchedCall]:
        """Calls to poll now (oldest due first), not already being polled."""
        candidates = (
            call
            for sid, call in self._calls.items()
            if call.due_at <= now and sid not in self._in_flight
        )
        if limit is None:
            return sorted(candidates, key=lambda c: c.due_at)
        return heapq.nsmallest(limit, candidates, key=lambda c: c.due_at)

    def polling(self, call_sid: str) -> None:
        self._in_flight.add(call_sid)

    def polled(self, call_sid: str, outcome: PollOutcome, now: datetime) -> bool:
        """Record a poll's outcome. ``terminal``: the call is finished (its event was
        published). ``active``/``error``: poll again after a backoff, unless the call is
        past its give-up time. Returns False when the watch gave the call up."""
        self._in_flight.discard(call_sid)
        call = self._calls.get(call_sid)
        if call is None:
            return True
        if outcome == "terminal":
            self.finished(call_sid, now)
            return True
        if outcome == "unknown":
            del self._calls[call_sid]
            return True
        if outcome == "active":
            call.polls += 1
            call.errors = 0
            delay = self.policy.active_backoff(call.polls)
        else:
            call.errors += 1
            delay = self.policy.error_backoff(call.errors)
        if now >= call.give_up_at:
            del self._calls[call_sid]
            return False
        call.due_at = min(now + timedelta(seconds=delay), call.give_up_at)
        return True

    def prune(self, now: datetime) -> int:
        """Forget what is older than the horizon; returns how many watched calls went."""
        cutoff = now - timedelta(seconds=self.policy.horizon_seconds)
        for sid in [sid for sid, at in self._finished.items() if at < cutoff]:
            del self._finished[sid]
        old = [sid for sid, call in self._calls.items() if call.accepted_at < cutoff]
        for sid in old:
            del self._calls[sid]
        return len(old)


# ------------------------------------------------------------------ the fact


def poll_event_id(call_sid: str, exotel_status: str | None) -> str:
    """Stable: every replica (and every retry) polling the same finished call publishes
    the same id, so consumers drop the copies."""
    name = "\x1f".join((call_sid, "poll", "terminal", exotel_status or ""))
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, name))


def _seconds(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None


def poll_event(
    call: WatchedCall, details: CallDetails, *, received_at: datetime
) -> CallStatusEvent:
    """The ``call.status`` terminal fact for a finished call's details."""
    if not details.is_terminal:
        raise ValueError("only a finished call's details make a terminal event")
    legs = [
        LegStatus(
            index=leg.index,
            status=normalise_status(leg.status),
            exotel_status=leg.status,
            on_call_duration=_seconds(leg.on_call_duration),
        )
        for leg in details.legs
    ]
    return CallStatusEvent(
        event_id=poll_event_id(call.call_sid, details.status),
        call_sid=call.call_sid,
        event_type="terminal",
        status=normalise_status(details.status) or "unknown",
        exotel_status=details.status,
        direction=details.direction,
        from_=details.from_number,
        to=details.to_number,
        caller_id=details.caller_id,
        started_at=details.start_time,
        ended_at=details.end_time,
        conversation_duration=_seconds(details.conversation_duration),
        recording_url=details.recording_url,
        legs=legs,
        custom_field=details.custom_field,
        command_id=call.command_id,
        account=call.account,
        api=details.api,
        source="poll",
        received_at=received_at,
        raw=details.raw,
    )
