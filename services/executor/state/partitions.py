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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from services.executor.ledger import CommandLedger
from services.executor.state.kafka_lanes import KafkaLanes
from services.executor.state.restore import RestoreTimeout, StateReader
from services.executor.state.store import StateStore

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
        the commands in the index."""
        owned = sorted(self.lanes.owned)
        return {
            "state": {
                "partitions": owned,
                "entries": self.store.entries_in(owned),
                "indexed": self.store.counts()["indexed"],
                "transactions": self.lanes.transactional,
            }
        }

    async def close(self) -> None:
        await self.reader.stop()
        await self.lanes.stop()
        self.store.close()
        if self.temporary and self.store.path is not None:
            shutil.rmtree(self.store.path.parent, ignore_errors=True)
