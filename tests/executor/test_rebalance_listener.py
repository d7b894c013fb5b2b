"""The rebalance listener hands a partition back to the dispatcher before its state is
restored: aiokafka can deliver the partition's records meanwhile, and a record refused
as "revoked" would be skipped (the consumer's position has already moved past it)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import TopicPartition

from services.executor.dispatch import KeyOrderedDispatcher
from services.executor.handlers import CommandRebalanceListener

TP = ("call.connect", 0)


class SlowState:
    """Acquires like a restore that takes a while; records what was released."""

    def __init__(self) -> None:
        self.restoring = asyncio.Event()
        self.restored = asyncio.Event()
        self.released: list[set[int]] = []

    async def acquire(self, partitions: set[int]) -> None:
        self.restoring.set()
        await self.restored.wait()

    async def release(self, partitions: set[int], positions: Mapping[tuple[str, int], int]) -> None:
        self.released.append(partitions)


async def test_a_command_delivered_while_a_partition_is_restored_again_is_taken() -> None:
    dispatcher = KeyOrderedDispatcher(10)
    state = SlowState()
    listener = CommandRebalanceListener(dispatcher, state, grace=0.1, topics=("call.connect",))
    ran: list[int] = []

    async def work() -> None:
        ran.append(5)

    await listener.on_partitions_revoked([TopicPartition(*TP)])
    assert state.released == [{0}]
    assigning = asyncio.create_task(listener.on_partitions_assigned([TopicPartition(*TP)]))
    await asyncio.wait_for(state.restoring.wait(), 5)

    taken = await dispatcher.submit(TP, 5, "key", work)

    state.restored.set()
    await asyncio.wait_for(assigning, 5)
    assert taken, "a record of the partition being restored was refused, and so skipped"
    async with asyncio.timeout(5):
        while not ran:
            await asyncio.sleep(0.01)
    assert ran == [5]


async def test_a_command_of_a_revoked_partition_is_not_taken() -> None:
    dispatcher = KeyOrderedDispatcher(10)
    listener = CommandRebalanceListener(
        dispatcher, SlowState(), grace=0.1, topics=("call.connect",)
    )

    async def work() -> None:
        raise AssertionError("a revoked partition's command ran")

    await listener.on_partitions_revoked([TopicPartition(*TP)])
    assert not await dispatcher.submit(TP, 7, "key", work)
