"""What moves with a command partition, acquired and released in the rebalance listener.

Acquire (before the partition's commands run): open its write lane (a transactional
producer fences the previous owner and aborts its open transaction), then restore its
ledger partition and the command index into the local store. Release (after the
partition's work finished or was cut short by the grace period): commit the safe offsets
(in the lane's last transaction, or with the consumer where there are no transactions),
close the lane, and drop what was pending for it.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from services.executor.ledger import CommandLedger
from services.executor.state.kafka_lanes import KafkaLanes
from services.executor.state.restore import RestoreTimeout, StateReader
from services.executor.state.store import StateStore

#: how long ``/readyz`` shows the same counts of the store's rows at most
COUNT_EVERY_SECONDS = 5.0
CommitOffsets = Callable[[dict[tuple[str, int], int]], Awaitable[bool]]


@dataclass
class ExecutorState:
    """The executor's state and its partitions (a ``PartitionState`` for the listener)."""

    lanes: KafkaLanes
    reader: StateReader
    ledger: CommandLedger
    commit_offsets: CommitOffsets
    store: StateStore
    #: the store's directory was made for this process (no EXECUTOR_STATE_DIR)
    temporary: bool = False
    #: what ``status`` counted last: (partitions and restores then, when, the counts)
    _counted: tuple[tuple[tuple[int, ...], int], float, dict[str, int]] | None = field(
        default=None, init=False, repr=False
    )

    async def acquire(self, partitions: set[int]) -> None:
        """Lanes opened, then the state restored; all of it within the restore timeout
        (:class:`RestoreTimeout` names the setting), never a silent wait."""
        try:
            async with asyncio.timeout(self.reader.timeout_seconds):
                await self.lanes.open(partitions)
        except TimeoutError as exc:
            raise RestoreTimeout(
                f"the write lanes of partitions {sorted(partitions)} did not open within "
                f"EXECUTOR_RESTORE_TIMEOUT_SECONDS={self.reader.timeout_seconds:g}"
            ) from exc
        # Our own entries still on their way to the store first: none of them may land
        # over what the restore reads (a partition that comes back after another owner).
        await self.ledger.flush()
        await self.reader.restore(partitions)
        self.lanes.mark_acquired(partitions)

    async def release(self, partitions: set[int], positions: Mapping[tuple[str, int], int]) -> None:
        if self.lanes.transactional:
            await self.lanes.flush(partitions, positions)
        else:
            await self.commit_offsets(dict(positions))
        await self.lanes.close(partitions)
        self.ledger.release(partitions)
        self.reader.release(partitions)

    async def stop(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Shutdown: the last positions of every partition, then every lane closed."""
        await self.release(set(self.lanes.owned), positions)

    def status(self) -> dict[str, object]:
        """What ``/readyz`` shows of the state: owned partitions, the entries held for them,
        the commands in the index (the counts left out while a restore runs)."""
        owned = sorted(self.lanes.owned)
        state: dict[str, object] = {"partitions": owned}
        if not self.reader.progress.active:
            state |= self._counts(owned)
        return {"state": state | {"transactions": self.lanes.transactional}}

    def _counts(self, owned: list[int]) -> dict[str, int]:
        """Counted again when the partitions changed, a restore finished or
        ``COUNT_EVERY_SECONDS`` passed: each count walks every row (a million at 1M
        commands), and /readyz is asked often (probes; ten times a second by a starting
        benchmark, whose counts held the store's lock against the restore's writes)."""
        key = (tuple(owned), self.reader.progress.restores)
        now = time.monotonic()
        counted = self._counted
        if counted is None or counted[0] != key or now - counted[1] >= COUNT_EVERY_SECONDS:
            counts = {
                "entries": self.store.entries_in(owned),
                "indexed": self.store.counts()["indexed"],
            }
            self._counted = counted = (key, now, counts)
        return counted[2]

    async def close(self) -> None:
        await self.reader.stop()
        await self.lanes.stop()
        await self.ledger.close()
        self.store.close()
        if self.temporary and self.store.path is not None:
            shutil.rmtree(self.store.path.parent, ignore_errors=True)
