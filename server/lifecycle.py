"""Where the server is in its life (starting, serving, draining, engine dead), and what follows.

Why our own drain and not uvicorn's: on SIGTERM uvicorn closes its listening socket and every idle
keep-alive connection at once, so a load balancer that has not yet seen the readiness probe fail
gets refused connections, not an answer. Here the first SIGTERM (or SIGINT) only starts a drain:
/ready turns 503, new requests get an OpenAI-shaped 503 (on new and on kept-alive connections,
which the 503 closes), and the requests already running finish. When the last one has ended, or
`--shutdown-timeout` has passed, uvicorn's own shutdown runs, the engine stops, and the process
exits 0. A second signal skips the wait. At the deadline, the requests still open are told: each
waits on `stopping()`, ends its stream with a `shutting_down` error event and `[DONE]` (or answers
503), and the process waits up to STOP_GRACE_S more for them to finish writing, so that the shared
state (the admission ledger, the engine) is closed only after the last of them.

When the engine dies the server cannot recover; it answers 503 for a moment (probes and load
balancers see why) and exits non-zero, so that its supervisor (systemd, Docker, Kubernetes)
starts a fresh one.

With `--shutdown-delay`, the first signal first only makes /ready answer 503 and keeps serving
everything else as before, for that many seconds; then the drain starts as above. A load balancer
polling /ready stops sending in that time, so no request of its meets a refusal (Kubernetes users
get the same from a preStop sleep). A second signal during the delay starts the drain at once.

A signal while the server is still starting (engine start, warm-up: minutes on a GPU) stops it
there: the start-up step under way is cancelled, the process never listens, and it exits 0.

This module holds the state; server/http/middleware/drain.py refuses work by it and
server/process/serve.py runs uvicorn by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from server.engine.base import Engine
from server.errors import EngineUnavailableError

logger = logging.getLogger(__name__)
T = TypeVar("T")

EXIT_ENGINE_DEAD = 1
ENGINE_POLL_S = 0.1
DEAD_LINGER_S = 1.0  # 503s, not refused connections, for the first second after the engine died
# After the drain deadline, how long open requests get to write their shutting-down event and end.
STOP_GRACE_S = 1.0
# Paths that are not work: answered while draining, and never waited for.
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})


class Phase(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    ENGINE_DEAD = "engine_dead"


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop running
        return None


class StartupStopped(Exception):
    """A stop signal came before the server was serving; the start-up was abandoned."""


class Lifecycle:
    """One per app. Counts the requests in flight and decides when the process may end."""

    def __init__(self, shutdown_timeout: float, shutdown_delay: float = 0.0) -> None:
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_delay = shutdown_delay
        self._drain_at: float | None = None  # monotonic time the delayed drain starts at
        self.phase = Phase.STARTING
        self.in_flight = 0
        self._ends_by: float | None = None  # monotonic time by which the process stops waiting
        self._dead_since: float | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._start_step: asyncio.Future[Any] | None = None
        self.stopped_starting = False
        self._stop = asyncio.Event()  # set at the drain deadline: open requests end now

    @property
    def exit_code(self) -> int:
        return EXIT_ENGINE_DEAD if self.phase is Phase.ENGINE_DEAD else 0

    @property
    def ready(self) -> bool:
        return self.phase is Phase.SERVING and self._drain_at is None

    @property
    def leaving(self) -> bool:
        """A stop signal came: draining, or still serving out the shutdown delay."""
        return self.phase is Phase.DRAINING or (self.phase is Phase.SERVING and self._drain_at is not None)

    def serving(self) -> None:
        """Raises StartupStopped if a stop signal came during the start-up: the server never serves."""
        if self.stopped_starting:
            raise StartupStopped
        if self.phase is Phase.STARTING:
            self.phase = Phase.SERVING

    def begin_drain(self) -> None:
        """Runs in a signal handler. During the start-up it cancels the step under way through the
        event loop; a step that blocks the loop (vLLM starts its engine core synchronously) is
        interrupted where it is, by StartupStopped raised from here, as vLLM's own server does."""
        if self.phase not in (Phase.STARTING, Phase.SERVING):
            return
        if self.phase is Phase.SERVING and self.shutdown_delay > 0 and self._drain_at is None:
            self._drain_at = time.monotonic() + self.shutdown_delay
            logger.info(
                "stop signal: /ready answers 503; serving %.1f s more before the drain", self.shutdown_delay
            )
            return
        self._drain_at = None
        starting = self.phase is Phase.STARTING
        self.phase = Phase.DRAINING
        self._ends_by = time.monotonic() + self.shutdown_timeout
        if not starting:
            logger.info(
                "draining: %d request(s) in flight, waiting up to %.0f s",
                self.in_flight,
                self.shutdown_timeout,
            )
            return
        self.stopped_starting = True
        logger.info("stop signal during the start-up: stopping before serving")
        if (step := self._start_step) is not None:
            if _current_task() is step:
                raise StartupStopped
            step.get_loop().call_soon_threadsafe(step.cancel)

    async def starting(self, step: Awaitable[T]) -> T:
        """Run one start-up step; a stop signal before or during it raises StartupStopped."""
        if self.stopped_starting:
            raise StartupStopped
        task = asyncio.ensure_future(step)
        self._start_step = task
        try:
            return await task
        except asyncio.CancelledError:
            if self.stopped_starting:
                raise StartupStopped from None
            raise
        finally:
            self._start_step = None

    def engine_died(self) -> None:
        if self.phase is not Phase.ENGINE_DEAD:
            logger.error("the engine died; exiting with status %d once open requests end", EXIT_ENGINE_DEAD)
            self.phase = Phase.ENGINE_DEAD
            self._dead_since = time.monotonic()
            self._ends_by = self._dead_since + self.shutdown_timeout

    def finished(self) -> bool:
        """True once the process should stop: drained (or out of time), or the engine is gone.
        Polled (uvicorn's tick, every 0.1 s), so it also starts a delayed drain when its time comes."""
        if self._drain_at is not None and time.monotonic() >= self._drain_at:
            self.begin_drain()
        if self._ends_by is None:
            return False
        now = time.monotonic()
        if now >= self._ends_by:
            return self._past_deadline(now - self._ends_by)
        if self._dead_since is not None and now - self._dead_since < DEAD_LINGER_S:
            return False
        return self.in_flight == 0

    def _past_deadline(self, late: float) -> bool:
        if not self._stop.is_set():
            self._stop.set()
            if self.in_flight:
                logger.warning("shutdown timeout: ending %d open request(s)", self.in_flight)
        if self.in_flight and late < STOP_GRACE_S:
            return False
        if self.in_flight:
            logger.warning("%d request(s) did not end in %.1f s; uvicorn cancels them", self.in_flight, late)
        return True

    async def stopping(self) -> None:
        """Returns at the drain deadline (never, while serving): what is still open must end now."""
        await self._stop.wait()

    def watch_engine(self, engine: Engine) -> None:
        """Poll the engine's health (a flag check, no round trip) so that its death ends the process
        even when no request is there to find out."""
        self._watcher = asyncio.create_task(self._watch(engine), name="engine-watcher")

    async def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def _watch(self, engine: Engine) -> None:
        while True:
            try:
                await engine.check_health()
            except EngineUnavailableError:
                self.engine_died()
                return
            await asyncio.sleep(ENGINE_POLL_S)
