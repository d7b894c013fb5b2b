"""``python -m bench.store_apply [N]``: the state store's ``apply`` offline, a batch's rows
one call each (``executemany``) against the batch handed to SQLite whole (``json_each``).

N ledger records like the state benchmark's (``done`` call.connect entries of 0.5 KiB,
12 partitions, records from several partitions per batch, 20,000 per batch, as a restore
reads them), filed by the restore's reader (``store_rows``) and applied to a new store in
a temporary directory (WAL, partition index deferred, as a cold restore does), in
alternating rounds. Per round and way, microseconds per row: the decoding (``store_rows``)
and the writing (``apply``) in line, each timed on the thread that does it (CPU), and the
wall time with the writes in a thread while the caller decodes the next batch (what the
restore does). The machine's load is printed: it is shared.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.state import entry_bytes
from services.executor.state import store as store_module
from services.executor.state.records import LEDGER_TOPIC, ledger_record
from services.executor.state.restore import store_rows
from services.executor.state.store import EntryRow, StateStore

PARTITIONS = 12
BATCH = 20_000
WAYS = {"one call per row": 10**12, "whole batch": store_module.WHOLE_BATCH_ROWS}


class AsRead:
    """A record as the restore's consumer hands it out (offset omitted)."""

    __slots__ = ("headers", "key", "value")

    def __init__(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.key, self.value, self.headers = key, value, headers


def history(n: int) -> list[list[tuple[int, list[AsRead]]]]:
    """Batches of (partition, records), each partition's records in offset order."""
    template = entry_bytes("TEMPLATE")
    now = time.time()
    per = BATCH // PARTITIONS
    batches = []
    for start in range(0, n, BATCH):
        batch = []
        for partition in range(PARTITIONS):
            records = []
            for i in range(per):
                index = (start // PARTITIONS + i) * PARTITIONS + partition
                command_id = f"history-{index:08d}"
                record = ledger_record(
                    key=f"call.connect:{command_id}",
                    partition=partition,
                    state="done",
                    at=now,
                    value=template.replace(b"TEMPLATE", command_id.encode()),
                )
                records.append(AsRead(record.key, record.value, record.headers))
            batch.append((partition, records))
        batches.append(batch)
    return batches


def decode(batch: Sequence[tuple[int, Sequence[Any]]]) -> list[EntryRow]:
    rows: list[EntryRow] = []
    for partition, records in batch:
        rows += store_rows(records, LEDGER_TOPIC, partition)[0]
    return rows


def fresh_store(directory: Path) -> StateStore:
    store = StateStore(Path(tempfile.mkdtemp(dir=directory)) / "state.db")
    store.defer_partition_index()
    return store


def in_line(batches: list[Any], directory: Path) -> tuple[float, float]:
    """CPU seconds decoding, CPU seconds applying (the same thread)."""
    store = fresh_store(directory)
    decoding = applying = 0.0
    for number, batch in enumerate(batches):
        began = time.thread_time()
        rows = decode(batch)
        decoded = time.thread_time()
        store.apply(entries=rows, positions=[(LEDGER_TOPIC, 0, number)])
        decoding += decoded - began
        applying += time.thread_time() - decoded
    store.close()
    return decoding, applying


def overlapped(batches: list[Any], directory: Path) -> float:
    """Wall seconds, each batch applied in a thread while the next one is decoded."""
    store = fresh_store(directory)
    began = time.perf_counter()
    writer: threading.Thread | None = None
    for number, batch in enumerate(batches):
        rows = decode(batch)
        if writer is not None:
            writer.join()
        writer = threading.Thread(
            target=store.apply,
            kwargs={"entries": rows, "positions": [(LEDGER_TOPIC, 0, number)]},
        )
        writer.start()
    if writer is not None:
        writer.join()
    seconds = time.perf_counter() - began
    store.close()
    return seconds


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    batches = history(n)
    rows = sum(len(records) for batch in batches for _, records in batch)
    gc.disable()  # as during a restore (PausedCollector)
    with tempfile.TemporaryDirectory(prefix="bench-store-apply-") as directory:
        for round_number in range(1, rounds + 1):
            for way, threshold in WAYS.items():
                store_module.WHOLE_BATCH_ROWS = threshold
                decoding, applying = in_line(batches, Path(directory))
                wall = overlapped(batches, Path(directory))
                print(
                    f"round {round_number}, {way}: decode {decoding / rows * 1e6:.2f} µs/row, "
                    f"apply {applying / rows * 1e6:.2f} µs/row (CPU, in line); "
                    f"in a thread beside the decoding: {wall / rows * 1e6:.2f} µs/row wall "
                    f"(load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
