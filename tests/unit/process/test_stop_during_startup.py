"""A stop signal while the app is still starting (engine start, warm-up) cancels the start-up: the
server never listens and the process ends with status 0, not after the start-up nor with uvicorn's
"startup failed" status 3."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.applications import Starlette

from server.lifecycle import Lifecycle, StartupStopped
from server.process.serve import serve

LONG_START_S = 60.0  # what a start-up would take without the cancel


def _app(lifecycle: Lifecycle, cleaned: list[str]) -> Starlette:
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)
        try:
            await lifecycle.starting(asyncio.sleep(LONG_START_S))
            lifecycle.serving()
            yield
        finally:
            cleaned.append("engine stopped")

    return Starlette(lifespan=lifespan)


def test_sigterm_during_startup_cancels_it_exits_0_and_never_listens() -> None:
    lifecycle = Lifecycle(shutdown_timeout=30)
    cleaned: list[str] = []
    config = uvicorn.Config(_app(lifecycle, cleaned), host="127.0.0.1", port=0, log_level="warning")
    start = time.monotonic()
    status = serve(lifecycle, config)
    took = time.monotonic() - start
    assert status == 0
    assert took < 5, took  # the 60 s step was cancelled, not waited for
    assert cleaned == ["engine stopped"]  # the lifespan's clean-up ran
    assert lifecycle.stopped_starting


async def test_a_stop_between_steps_stops_the_next_one_and_serving() -> None:
    lifecycle = Lifecycle(shutdown_timeout=30)
    assert await lifecycle.starting(asyncio.sleep(0, result="engine")) == "engine"
    lifecycle.begin_drain()  # the signal, between two steps
    step = asyncio.sleep(0)
    with pytest.raises(StartupStopped):
        await lifecycle.starting(step)
    step.close()
    with pytest.raises(StartupStopped):
        lifecycle.serving()
