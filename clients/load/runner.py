"""Drive one load point: closed loop (C clients, each sending its next request when the last one
ends) or open loop (Poisson arrivals at a rate, whatever the server's speed).

Closed loop measures what a fixed population of users gets; open loop shows queueing, as latency
grows without bound once the rate passes what the server can serve. Requests are streamed and timed
chunk by chunk; nothing is retried (a retry would hide the very errors the test is for).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from clients.async_client import AsyncClient
from clients.errors import APIConnectionError, APIError
from clients.load.prompts import WorkItem
from clients.load.stats import Load, Record
from clients.types import Delta


@dataclass(frozen=True)
class Target:
    """Where and how to send: the server, the endpoint, and the sampling fields every request gets."""

    base_url: str
    api_key: str | None
    model: str
    endpoint: str = "chat"  # "chat" | "completions"
    params: tuple[tuple[str, Any], ...] = ()
    timeout_s: float = 600.0


def _open(client: AsyncClient, target: Target, item: WorkItem) -> AsyncIterator[Delta]:
    params = {**dict(target.params), "max_tokens": item.max_tokens}
    if target.endpoint == "completions":
        return client.complete_stream(item.prompt, **params)
    return client.chat_stream(item.messages, **params)


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, APIError):
        return f"http_{exc.status}" if exc.status is not None else "stream_error"
    if isinstance(exc, APIConnectionError):
        return "timeout" if exc.timeout else "connection"
    return type(exc).__name__


async def send(client: AsyncClient, target: Target, item: WorkItem, record: Record, t0: float) -> None:
    """One streamed request, timed into `record`."""
    start = time.perf_counter()
    record.start_s = start - t0
    last = start
    chunks = 0
    usage_tokens: int | None = None
    try:
        async for delta in _open(client, target, item):
            now = time.perf_counter()
            if delta.usage is not None:
                usage_tokens = delta.usage.completion_tokens
                record.prompt_tokens = delta.usage.prompt_tokens
                continue
            if record.ttft_s is None:
                record.ttft_s = now - start
            else:
                record.itl_s.append(now - last)
            chunks += 1 if delta.text else 0
            last = now
    except (APIError, APIConnectionError) as exc:
        record.error, record.detail = _error_kind(exc), str(exc)[:300]
        return
    if record.ttft_s is None:
        record.error, record.detail = "no_output", "the stream ended without a chunk of output"
        return
    record.e2e_s = last - start
    record.output_tokens = usage_tokens if usage_tokens is not None else chunks


async def run_point(
    target: Target,
    load: Load,
    items: list[WorkItem],
    on_done: Callable[[Record], None],
    seed: int = 0,
) -> tuple[list[Record], float]:
    """All `items` at `load`; returns the records (in send order) and the wall time."""
    connections = int(load.value) if load.mode == "concurrency" else max(1, min(len(items), 1024))
    records = [Record(load.label(), i, 0.0) for i in range(len(items))]
    async with AsyncClient(
        target.base_url,
        target.api_key,
        model=target.model,
        timeout=target.timeout_s,
        max_retries=0,
        max_connections=connections,
    ) as client:

        async def one(i: int) -> None:
            await send(client, target, items[i], records[i], t0)
            on_done(records[i])

        t0 = time.perf_counter()
        if load.mode == "concurrency":
            await _closed_loop(one, len(items), int(load.value))
        else:
            await _open_loop(one, len(items), load.value, random.Random(seed))
        return records, time.perf_counter() - t0


async def _closed_loop(one: Callable[[int], Any], count: int, concurrency: int) -> None:
    queue = iter(range(count))

    async def user() -> None:
        for i in queue:
            await one(i)

    await asyncio.gather(*(user() for _ in range(min(concurrency, count))))


async def _open_loop(one: Callable[[int], Any], count: int, rate: float, rng: random.Random) -> None:
    """Exponential gaps between sends (a Poisson process); rate inf sends everything at once."""
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(one(i)))
        if rate != float("inf") and i + 1 < count:
            await asyncio.sleep(rng.expovariate(rate))
    await asyncio.gather(*tasks)


async def warm_up(target: Target, items: list[WorkItem], concurrency: int) -> None:
    """Unrecorded requests first, so connection set-up and a cold server do not skew the first point."""
    if items:
        await run_point(target, Load("concurrency", max(1, concurrency)), items, lambda _r: None)
