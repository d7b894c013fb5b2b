"""``python -m bench [name ...]``: run the benchmarks (all by default), print one ratio each.

Names: overhead, latency, rate, scaleout, ingress, state, watchstate, rebalance, e2e,
accounts, intent. Each starts its own broker and the processes it measures (sandbox and executors;
the ingress and its baseline, driven by wrk). With every benchmark run (and without
``--no-write``) the figures and the machine are written to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bench.accounts import many_accounts
from bench.e2e import end_to_end
from bench.harness import exit_on_sigterm, machine
from bench.ingress import ingress_throughput
from bench.intent_txn import intent_cost
from bench.rate import rate_precision, scale_out
from bench.rebalance import rebalance_cost
from bench.results import write_results
from bench.state import state_at_scale
from bench.throughput import Figure, latency_hiding, overhead
from bench.watch_state import watch_restore

BENCHMARKS: dict[str, Callable[[], Coroutine[Any, Any, Figure]]] = {
    "overhead": overhead,
    "latency": latency_hiding,
    "rate": rate_precision,
    "scaleout": scale_out,
    "ingress": ingress_throughput,
    "state": state_at_scale,
    "watchstate": watch_restore,
    "rebalance": rebalance_cost,
    "e2e": end_to_end,
    "accounts": many_accounts,
    "intent": intent_cost,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="name", help=", ".join(BENCHMARKS))
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    names = args.names or list(BENCHMARKS)
    figures: list[Figure] = []
    for name in names:
        started = time.monotonic()
        figure: Figure = asyncio.run(BENCHMARKS[name]())
        figures.append(figure)
        print(f"{figure.line}  [{time.monotonic() - started:.0f} s]", flush=True)
        details = ", ".join(f"{key} = {value}" for key, value in figure.details.items())
        print(f"  {details}", file=sys.stderr, flush=True)
    if not args.no_write and set(names) == set(BENCHMARKS):
        path = write_results(figures, machine())
        print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
