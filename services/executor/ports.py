"""What the executor's command handlers need from outside: its ports.

The composition root (``app.py``) plugs in the adapters: an
:class:`~services.exotel.client.ExotelClient` per account as the gateway, the Kafka-backed
:class:`~services.executor.ledger.CommandLedger` as the journal, Prometheus metrics as the
observer. The broker-free tests plug in ``tests/support/exotel.py``'s fake gateway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from contracts.commands import ApiVersion, CommandType
from contracts.details import CallDetails
from services.executor.supervision import LegLike
from services.exotel.accounts import ApiFamily, LwbEncoding
from services.exotel.client import BulkFilter, Slot
from services.exotel.errors import ExotelError
from services.exotel.models import BulkPage, CompletedCallLeg, NumberMetadata, V3CallLegs
from services.exotel.models import CallDetails as ExotelCallDetails
from services.exotel.requests import (
    ConnectRequest,
    HangupRequest,
    MonitorLegRequest,
    MonitorUpgradeRequest,
)


class PlacedCallLike(Protocol):
    @property
    def call_sid(self) -> str: ...


class LegAnswer(Protocol):
    """Exotel's answer to creating, upgrading or hanging up a leg."""

    @property
    def sid(self) -> str: ...


class ExotelGateway(Protocol):
    """What the executor needs from Exotel for one account.

    Requests with an effect take the rate limiter's :class:`Slot`, waited for first with
    :meth:`wait_for_slot`, so that the command's intent is recorded between the two.
    """

    async def wait_for_slot(self, family: ApiFamily) -> Slot: ...

    async def place_call(
        self, request: ConnectRequest, *, slot: Slot | None = None
    ) -> PlacedCallLike: ...

    async def active_legs(self, call_sid: str) -> Sequence[LegLike]: ...

    async def create_monitor_leg(
        self, request: MonitorLegRequest, *, slot: Slot | None = None
    ) -> LegAnswer: ...

    async def update_monitor_leg(
        self, request: MonitorUpgradeRequest, *, slot: Slot | None = None
    ) -> LegAnswer: ...

    async def hangup_leg(
        self, request: HangupRequest, *, slot: Slot | None = None
    ) -> LegAnswer: ...

    async def number_metadata(self, number: str) -> NumberMetadata: ...

    async def call_details(
        self, call_sid: str, api: ApiVersion | None = None
    ) -> ExotelCallDetails: ...

    async def completed_call_legs(self, call_sid: str) -> Sequence[CompletedCallLeg]: ...

    async def call_legs_v3(self, call_sid: str) -> V3CallLegs: ...

    async def bulk_page(
        self,
        filters: BulkFilter | None = None,
        *,
        page_uri: str | None = None,
        page_size: int = 100,
        oldest_first: bool = True,
    ) -> BulkPage: ...

    async def bulk_call_details(
        self,
        *,
        from_numbers: Sequence[str] = (),
        to_numbers: Sequence[str] = (),
        created_from: datetime | None = None,
    ) -> Sequence[PlacedCallLike]: ...


class EffectJournal(Protocol):
    """Records an intent durably before a request with an effect (the command ledger)."""

    async def intend(
        self,
        *,
        command_id: str,
        command_type: CommandType,
        account: str,
        evidence: Mapping[str, str],
    ) -> object: ...


class DetailsSink(Protocol):
    """Takes a command's ``call.details`` facts. The executor writes them with the
    command's next ledger write (a backfill's next checkpoint, else its outcome), before
    the ledger record; a test's sink may publish them at once."""

    async def publish(self, fact: CallDetails) -> None: ...


class InDoubt(Protocol):
    """A recorded intent with no outcome: the request may have reached Exotel."""

    @property
    def at(self) -> datetime: ...

    @property
    def evidence(self) -> dict[str, str]: ...


class StatusSearch(Protocol):
    """One command's search of ``call.status``, from a moment on."""

    async def call_sid(self) -> str | None:
        """The call sid of a status event carrying the command's id, if one has arrived
        (each call reads on from where the previous one stopped)."""

    async def close(self) -> None: ...


class StatusEvidence(Protocol):
    """The facts voicebus receives about its calls: a call whose connect answer was lost
    still reports its status callbacks, and they carry the command's id."""

    def search(self, command_id: str, since: datetime) -> StatusSearch: ...


@dataclass(frozen=True)
class FetchMark:
    """Where the consumer was when a command arrived: its partition, and when the last
    fetch answer carrying that partition was read (ms, the consumer's clock)."""

    tp: tuple[str, int]
    at_ms: int


class PartitionProgress(Protocol):
    """How far the executor's consumer has fetched each command partition, as its Kafka
    client knows it (the dispatcher's cross-topic order asks instead of always waiting
    the ordering window). Partitions are ``(topic, partition)``. None wherever the client
    does not know (yet)."""

    def mark(self, tp: tuple[str, int]) -> FetchMark | None:
        """Taken as a command of ``tp`` arrives (after the fetch that brought it)."""

    def end_offset(self, tp: tuple[str, int], *, since: FetchMark) -> int | None:
        """The end of ``tp`` (the offset its next record will get; the last stable
        offset when reading committed records) as reported by a fetch answer that counts
        everything acknowledged before the command of ``since`` was fetched; None when no
        such answer was read yet, or the client cannot tell."""

    def start_offset(self, tp: tuple[str, int]) -> int | None:
        """Where the consumer started reading ``tp`` in its current assignment."""


class ExecutorObserver(Protocol):
    def retried(self, command_type: str, error: ExotelError) -> None: ...


@dataclass(frozen=True)
class Account:
    """A configured Exotel account as the executor sees it."""

    name: str
    default_api: ApiVersion
    gateway: ExotelGateway
    #: DND check of call.connect's `to` when the command does not say
    dnd_check: bool = False
    #: how its LWB create / upgrade requests are encoded (the account's setting)
    lwb_encoding: LwbEncoding = "form"
