"""What /readyz shows of the executor's state, without counting a million rows per probe:
counted again when the partitions change or a restore finishes, not while one runs."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import cast

from services.executor.ledger import CommandLedger
from services.executor.state.kafka_lanes import KafkaLanes
from services.executor.state.partitions import ExecutorState
from services.executor.state.restore import RestoreProgress, RestoreStats, StateReader
from services.executor.state.store import EntryRow, StateStore


class CountingStore(StateStore):
    def __init__(self) -> None:
        super().__init__(None)
        self.counted = 0

    def entries_in(self, partitions: Iterable[int]) -> int:
        self.counted += 1
        return super().entries_in(partitions)


ONE = EntryRow("call.connect:c-1", 0, "done", 1.0, b"{}")


async def no_commit(offsets: dict[tuple[str, int], int]) -> bool:
    return True


def executor_state(store: StateStore, progress: RestoreProgress, owned: set[int]) -> ExecutorState:
    lanes = SimpleNamespace(owned=owned, transactional=False)
    reader = SimpleNamespace(progress=progress)
    return ExecutorState(
        lanes=cast("KafkaLanes", lanes),
        reader=cast("StateReader", reader),
        ledger=cast("CommandLedger", None),
        commit_offsets=no_commit,
        store=store,
    )


def counted(partitions: list[int], *, entries: int) -> dict[str, object]:
    """What /readyz shows of a store with ``entries`` rows and an empty index."""
    return {"partitions": partitions, "entries": entries, "indexed": 0, "transactions": False}


def test_repeated_probes_show_the_counts_of_one_count() -> None:
    store = CountingStore()
    store.apply(entries=[ONE])
    state = executor_state(store, RestoreProgress(restores=1), owned={0, 1})
    for _ in range(5):
        assert state.status()["state"] == counted([0, 1], entries=1)
    assert store.counted == 1


def test_nothing_is_counted_while_a_restore_runs_and_all_again_once_it_finished() -> None:
    store = CountingStore()
    progress = RestoreProgress(restores=1)
    owned = {0}
    state = executor_state(store, progress, owned)
    state.status()
    progress.active = True
    assert state.status()["state"] == {"partitions": [0], "transactions": False}
    store.apply(entries=[ONE])
    progress.active = False
    progress.finished(RestoreStats(records=1, seconds=0.1, ledger_partitions=[0]))
    assert state.status()["state"] == counted([0], entries=1)
    assert store.counted == 2


def test_a_new_assignment_is_counted_at_once() -> None:
    store = CountingStore()
    owned = {0}
    state = executor_state(store, RestoreProgress(restores=1), owned)
    state.status()
    owned.add(1)
    assert state.status()["state"] == counted([0, 1], entries=0)
    assert store.counted == 2
