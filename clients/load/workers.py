"""`--workers N`: one load point spread over N processes, for loads one Python process cannot drive.

Parsing and timing a stream chunk by chunk costs a client CPU time per token; at thousands of
tokens a second one process falls behind and would measure itself, not the server. N processes
each take every N-th request and a share of the load (C/N users, or rate/N arrivals: the sum of N
Poisson processes is one at the whole rate), start at one agreed wall-clock moment, and report each
finished record back for the progress bar. Their records merge into one point.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from clients.load import runner
from clients.load.prompts import WorkItem
from clients.load.stats import Load, Record

START_DELAY_S = 5.0  # long enough for every process to start and import before the common start


def shares(load: Load, workers: int) -> list[Load]:
    """Each worker's part of the load; workers left without a user get none."""
    if load.mode == "concurrency":
        users = int(load.value)
        counts = [users // workers + (1 if i < users % workers else 0) for i in range(workers)]
        return [Load("concurrency", c) for c in counts if c > 0]
    return [Load("rate", load.value / workers) for _ in range(workers)]


def _work(
    target: runner.Target,
    load: Load,
    items: list[WorkItem],
    seed: int,
    start_at: float,
    done: Any,  # a multiprocessing queue of finished records
) -> tuple[list[Record], float]:
    time.sleep(max(0.0, start_at - time.time()))
    return asyncio.run(runner.run_point(target, load, items, done.put, seed))


def run_point(
    target: runner.Target,
    load: Load,
    items: list[WorkItem],
    on_done: Callable[[Record], None],
    seed: int,
    workers: int,
) -> tuple[list[Record], float]:
    """As runner.run_point, over `workers` processes: the records in send order and the wall time."""
    parts = shares(load, workers)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(len(parts), mp_context=ctx) as pool:
        done = manager.Queue()
        start_at = time.time() + START_DELAY_S
        futures = [
            pool.submit(_work, target, part, items[i :: len(parts)], seed + i, start_at, done)
            for i, part in enumerate(parts)
        ]
        while not all(f.done() for f in futures):
            with contextlib.suppress(queue.Empty):
                on_done(done.get(timeout=0.2))
        while not done.empty():
            on_done(done.get())
        results = [f.result() for f in futures]
    records: list[Record] = [None] * len(items)  # type: ignore[list-item]
    for i, (part_records, _) in enumerate(results):
        for j, record in enumerate(part_records):
            record.index = i + j * len(parts)
            records[record.index] = record
    return records, max(duration for _, duration in results)
