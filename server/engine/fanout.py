"""Run the engine requests behind one API request (n choices x prompts) and merge their deltas.

Each choice is its own engine request: one code path serves n > 1, several prompts, or both. All
engine requests are created before the first await, so invalid parameters fail before a response
starts, and closing the merged stream closes every engine stream, which aborts its request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from server.engine.base import Delta, Engine, GenerateRequest


class DeltaStream(Protocol):
    """(choice index, delta) pairs of one API request; closing it aborts what is still running."""

    def __aiter__(self) -> AsyncIterator[tuple[int, Delta]]: ...

    async def __anext__(self) -> tuple[int, Delta]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    request: GenerateRequest


def start(engine: Engine, choices: list[Choice]) -> AsyncGenerator[tuple[int, Delta], None]:
    streams = [(c.index, engine.generate(c.request)) for c in choices]
    if len(streams) == 1:
        return _single(*streams[0])
    return _merge(streams)


async def _single(index: int, stream: AsyncGenerator[Delta, None]) -> AsyncGenerator[tuple[int, Delta], None]:
    async with contextlib.aclosing(stream):
        async for delta in stream:
            yield index, delta


_DONE = object()


async def _merge(
    streams: list[tuple[int, AsyncGenerator[Delta, None]]],
) -> AsyncGenerator[tuple[int, Delta], None]:
    queue: asyncio.Queue[tuple[int, Delta | BaseException | object]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncGenerator[Delta, None]) -> None:
        try:
            async with contextlib.aclosing(stream):
                async for delta in stream:
                    queue.put_nowait((index, delta))
        except Exception as exc:  # handed to the consumer, which re-raises it
            queue.put_nowait((index, exc))
        else:
            queue.put_nowait((index, _DONE))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in streams]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                assert isinstance(item, Delta)
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
