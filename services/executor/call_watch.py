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

**Finalisation** (``WatchPolicy.finalise_after_seconds``; off when ``None``): every call
whose first terminal ``call.status`` (callback or poll, any account voicebus knows) is
read gets its details fetched once, that long after (Exotel fills ``Price`` about two
minutes after a call ends), published on ``call.details`` with ``source: poll``::

    first terminal fact ── finalise_after ──► fetch ── finished ──► CallDetails published
                                                    ── still active ──► again after
                                                       finalise_after (5 tries, then as is)
                                                    ── error ──► again after ERROR_BACKOFF..

A ``call.details`` fact with ``source: poll`` read back (ours, or another replica's before
a rebalance, or from before a restart) finalises the call for good: the state is what
Kafka holds, so a call is finalised at most once across replicas and restarts.

**Memory.** Only the open items live here: calls still missing their terminal and
finished calls still to be finalised. What the watch must remember of every other call
of the horizon (it finished, it was finalised, a leg event was seen) and the facts the
open items came from are :class:`CallFacts`, one compact row per call in a
:class:`CallHistory`: a dict in :class:`MemoryHistory` (tests), SQLite with a checkpoint
per partition in the executor (``services/executor/state/watch_store.py``), from which
:meth:`CallWatch.restore` brings a partition's open items back without reading Kafka.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

from contracts.status import CallStatusEvent, LegStatus
from services.common.call_status import normalise_status
from services.exotel.accounts import ApiVersion
from services.exotel.models import CallDetails

__all__ = [
    "CALL_APIS",
    "ERROR_BACKOFF_SECONDS",
    "MAX_BACKOFF_SECONDS",
    "MAX_CALL_SECONDS",
    "MAX_FINALISE_TRIES",
    "CallFacts",
    "CallHistory",
    "CallWatch",
    "Finalisation",
    "FinaliseOutcome",
    "MemoryHistory",
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
#: published: its CallDetails is out; pending: Exotel still calls it active; error: no answer
FinaliseOutcome = Literal["published", "pending", "error"]
#: Fetches of a call Exotel still calls active before its details are published as they are.
MAX_FINALISE_TRIES: Final = 5
#: Where the watch learnt of a call: an accepted call.connect, or a flow's Passthru.
SeenIn = Literal["result", "flow"]

CALL_APIS: Final[dict[str, ApiVersion]] = {"v1": "v1", "v2": "v2", "v3": "v3"}
_SEEN_IN: Final[dict[str, SeenIn]] = {"result": "result", "flow": "flow"}

# Same namespace as the ingress's callback ids; the "poll" in the name keeps them apart.
_EVENT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:voicebus:call.status")


@dataclass(frozen=True)
class WatchPolicy:
    after_seconds: float = 900.0
    horizon_seconds: float = 24 * 3600.0
    max_call_seconds: float = MAX_CALL_SECONDS
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    error_backoff_seconds: float = ERROR_BACKOFF_SECONDS
    #: fetch every finished call's details this long after its first terminal fact
    finalise_after_seconds: float | None = None
    #: watch accepted calls for a missing terminal callback (the finalisation alone if off)
    watch_missing: bool = True

    def __post_init__(self) -> None:
        if self.after_seconds <= 0 or self.horizon_seconds <= 0:
            raise ValueError("after_seconds and horizon_seconds must be positive")
        if self.finalise_after_seconds is not None and self.finalise_after_seconds <= 0:
            raise ValueError("finalise_after_seconds must be positive")

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
class Finalisation:
    """A finished call whose details are still to be fetched and published."""

    call_sid: str
    account: str
    api: ApiVersion
    command_id: str | None
    partition: int
    terminal_at: datetime
    due_at: datetime
    #: the call had more participants than its two legs (a leg event was read): ask for
    #: every one of them
    all_legs: bool = False
    tries: int = 0
    errors: int = 0


@dataclass(slots=True)
class CallFacts:
    """What the watch keeps of one call of the horizon (times: epoch seconds): the
    acceptance its watch came from, the first terminal fact its finalisation came from,
    and whether it finished, was finalised, had a leg event. A few dozen bytes, never the
    result or status objects themselves."""

    call_sid: str
    #: the call's partition (its facts are keyed by call_sid on co-partitioned topics)
    partition: int
    accepted_at: float | None = None
    account: str | None = None
    api: str | None = None
    command_id: str | None = None
    seen_in: str | None = None
    finished_at: float | None = None
    terminal_at: float | None = None
    terminal_account: str | None = None
    terminal_api: str | None = None
    terminal_command_id: str | None = None
    finalised_at: float | None = None
    legs_at: float | None = None

    @property
    def seen_at(self) -> float:
        """The newest of its times: the row goes once this is older than the horizon."""
        times = (
            self.accepted_at,
            self.finished_at,
            self.terminal_at,
            self.finalised_at,
            self.legs_at,
        )
        return max((t for t in times if t is not None), default=0.0)


class CallHistory(Protocol):
    """Where :class:`CallFacts` live. ``get`` returns the row to change in place;
    ``put`` after every change (a store writes it with its next checkpoint)."""

    def get(self, call_sid: str) -> CallFacts | None: ...

    def put(self, facts: CallFacts) -> None: ...

    def prune(self, before: float) -> None: ...


@dataclass
class MemoryHistory:
    """Every row in a dict: the watch without a store (tests, pure logic)."""

    rows: dict[str, CallFacts] = field(default_factory=dict)

    def get(self, call_sid: str) -> CallFacts | None:
        return self.rows.get(call_sid)

    def put(self, facts: CallFacts) -> None:
        self.rows[facts.call_sid] = facts

    def prune(self, before: float) -> None:
        for sid in [sid for sid, row in self.rows.items() if row.seen_at < before]:
            del self.rows[sid]


def _note_accepted(
    facts: CallFacts,
    *,
    account: str,
    api: str,
    command_id: str | None,
    at: float,
    seen_in: SeenIn,
) -> bool:
    """Fold an acceptance into the call's facts, whatever order the topics are read in:
    the earliest time; the result's account, API and command over a flow event's. Whether
    anything changed."""
    changed = False
    if facts.accepted_at is None or at < facts.accepted_at:
        facts.accepted_at, changed = at, True
    if facts.account is None or (facts.command_id is None and command_id is not None):
        facts.account, facts.api, facts.command_id, facts.seen_in = (
            account,
            api,
            command_id,
            seen_in,
        )
        changed = True
    return changed


def _later(current: float | None, at: float) -> float:
    return at if current is None else max(current, at)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class CallWatch:
    """Accepted calls awaiting a terminal status and finished calls awaiting their
    finalisation (the open items, in memory), over a :class:`CallHistory` of every call of
    the horizon (so a terminal read before its call's acceptance still counts: the topics
    are read in parallel)."""

    policy: WatchPolicy = field(default_factory=WatchPolicy)
    history: CallHistory = field(default_factory=MemoryHistory)
    _calls: dict[str, WatchedCall] = field(default_factory=dict)
    _in_flight: set[str] = field(default_factory=set)
    _finalising: dict[str, Finalisation] = field(default_factory=dict)
    _finalising_now: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_sid: object) -> bool:
        return call_sid in self._calls

    def get(self, call_sid: str) -> WatchedCall | None:
        return self._calls.get(call_sid)

    def calls(self) -> list[WatchedCall]:
        """The watched calls (a copy of the list)."""
        return list(self._calls.values())

    def _facts(self, call_sid: str, partition: int) -> CallFacts:
        facts = self.history.get(call_sid)
        return facts if facts is not None else CallFacts(call_sid, partition)

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
        older than the horizon). Its facts are kept in any case (even when the policy
        watches no missing callbacks, so switching it on applies to the stored past)."""
        horizon = timedelta(seconds=self.policy.horizon_seconds)
        if accepted_at < now - horizon:
            return False
        facts = self._facts(call_sid, partition)
        if _note_accepted(
            facts,
            account=account,
            api=api,
            command_id=command_id,
            at=accepted_at.timestamp(),
            seen_in=seen_in,
        ):
            self.history.put(facts)
        if facts.finished_at is not None or not self.policy.watch_missing:
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

    def finished(self, call_sid: str, at: datetime, partition: int = -1) -> bool:
        """A terminal call event (callback or poll) was read: stop watching the call.
        True when it was being watched."""
        facts = self._facts(call_sid, partition)
        facts.finished_at = _later(facts.finished_at, at.timestamp())
        self.history.put(facts)
        return self._calls.pop(call_sid, None) is not None

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Partitions revoked: their calls are another replica's now (their history
        stays where it is kept, for when they come back)."""
        gone = set(partitions)
        sids = [sid for sid, call in self._calls.items() if call.partition in gone]
        for sid in sids:
            del self._calls[sid]
        for sid in [s for s, f in self._finalising.items() if f.partition in gone]:
            del self._finalising[sid]
        return len(sids)

    def restore(self, rows: Iterable[CallFacts], now: datetime) -> int:
        """Bring back the open items of stored rows (a partition assigned again, or after
        a restart) by reading each row's facts again: calls accepted but not finished,
        finished calls not finalised, within the horizon. How many calls are watched."""
        watched = 0
        for facts in rows:
            sid = facts.call_sid
            if facts.accepted_at is not None and facts.account is not None:
                watched += self.accepted(
                    sid,
                    account=facts.account,
                    api=CALL_APIS.get(facts.api or "", "v1"),
                    command_id=facts.command_id,
                    accepted_at=_utc(facts.accepted_at),
                    partition=facts.partition,
                    now=now,
                    seen_in=_SEEN_IN.get(facts.seen_in or "", "result"),
                )
            if facts.terminal_at is not None and facts.terminal_account is not None:
                self.terminal(
                    sid,
                    account=facts.terminal_account,
                    api=CALL_APIS.get(facts.terminal_api or "", "v1"),
                    command_id=facts.terminal_command_id,
                    at=_utc(facts.terminal_at),
                    partition=facts.partition,
                    now=now,
                )
        return watched

    # ------------------------------------------------------------------ finalisation

    @property
    def finalisations(self) -> int:
        """Finished calls whose details are still to be published."""
        return len(self._finalising)

    def pending_finalisation(self, call_sid: str) -> Finalisation | None:
        return self._finalising.get(call_sid)

    def terminal(
        self,
        call_sid: str,
        *,
        account: str,
        api: ApiVersion,
        command_id: str | None,
        at: datetime,
        partition: int,
        now: datetime,
    ) -> bool:
        """A call's terminal fact was read: schedule its finalisation (the first terminal
        fact counts). False when finalisation is off, the call is finalised already, or
        older than the horizon. The first terminal fact is kept even when finalisation is
        off."""
        after = self.policy.finalise_after_seconds
        horizon = timedelta(seconds=self.policy.horizon_seconds)
        if at < now - horizon:
            return False
        facts = self._facts(call_sid, partition)
        if facts.terminal_at is None or at.timestamp() < facts.terminal_at:
            facts.partition = partition
            facts.terminal_at = at.timestamp()
            facts.terminal_account, facts.terminal_api = account, api
            facts.terminal_command_id = command_id
            self.history.put(facts)
        if after is None or facts.finalised_at is not None:
            return False
        pending = self._finalising.get(call_sid)
        if pending is not None:
            if at < pending.terminal_at:  # an earlier terminal fact read later
                pending.terminal_at = at
                pending.due_at = min(pending.due_at, at + timedelta(seconds=after))
            return False
        self._finalising[call_sid] = Finalisation(
            call_sid=call_sid,
            account=account,
            api=api,
            command_id=command_id,
            partition=partition,
            terminal_at=at,
            due_at=at + timedelta(seconds=after),
            all_legs=facts.legs_at is not None,
        )
        return True

    def leg_event(self, call_sid: str, at: datetime, partition: int = -1) -> None:
        """A leg event of the call was read (a monitor leg, a transfer): the call had
        more than two participants, so its finalisation asks for every one."""
        facts = self._facts(call_sid, partition)
        facts.legs_at = _later(facts.legs_at, at.timestamp())
        self.history.put(facts)
        pending = self._finalising.get(call_sid)
        if pending is not None:
            pending.all_legs = True

    def finalised(self, call_sid: str, at: datetime, partition: int = -1) -> bool:
        """The call's ``call.details`` (``source: poll``) was read or published: never
        again. True when it was pending."""
        facts = self._facts(call_sid, partition)
        facts.finalised_at = _later(facts.finalised_at, at.timestamp())
        self.history.put(facts)
        return self._finalising.pop(call_sid, None) is not None

    def due_finalisations(self, now: datetime, limit: int | None = None) -> list[Finalisation]:
        """Finalisations to run now (oldest due first), not already running."""
        candidates = (
            item
            for sid, item in self._finalising.items()
            if item.due_at <= now and sid not in self._finalising_now
        )
        return heapq.nsmallest(limit or len(self._finalising), candidates, key=lambda f: f.due_at)

    def finalising(self, call_sid: str) -> None:
        self._finalising_now.add(call_sid)

    def finalise_outcome(self, call_sid: str, outcome: FinaliseOutcome, now: datetime) -> None:
        """Record a finalisation's outcome: ``published`` is final; ``pending`` (Exotel
        still calls it active) and ``error`` try again later."""
        self._finalising_now.discard(call_sid)
        item = self._finalising.get(call_sid)
        if item is None:
            return
        if outcome == "published":
            self.finalised(call_sid, now, item.partition)
            return
        if outcome == "pending":
            item.tries += 1
            item.errors = 0
            delay = self.policy.finalise_after_seconds or self.policy.after_seconds
        else:
            item.errors += 1
            delay = self.policy.error_backoff(item.errors)
        item.due_at = now + timedelta(seconds=delay)

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
            self.finished(call_sid, now, call.partition)
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
        self.history.prune(cutoff.timestamp())
        for sid in [s for s, f in self._finalising.items() if f.terminal_at < cutoff]:
            del self._finalising[sid]
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
