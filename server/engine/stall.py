"""A hung engine (a kernel that never returns, a stopped or wedged engine core) does not die, so
nothing reports it: its requests just wait forever and the process looks alive. The engine is
taken for hung when requests are open and no engine step has completed for `timeout` seconds.

Time is counted from the later of the last step and the moment requests became open, so an engine
that was idle for an hour is not hung the instant a request arrives. With several front ends every
step's stats reach only one of them, so the last step is kept in a clock they all share
(FrontendLink.last_step). vLLM guards the model's own execution the same way
(VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS, 300 s, in its multi-process executor only).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from server.engine.base import SharedClock


class _LocalClock:
    value: float = 0.0


class StallWatch:
    def __init__(
        self,
        timeout: float,
        shared: SharedClock | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout  # 0: never
        self._last_step: SharedClock = shared if shared is not None else _LocalClock()
        self._clock = clock
        self._busy_since: float | None = None

    def stepped(self) -> None:
        """An engine step completed (called for every output or stats message from the engine)."""
        self._last_step.value = self._clock()

    def stalled_for(self, busy: bool) -> float | None:
        """Seconds since the engine last made progress for open requests, once past the timeout;
        else None. `busy`: requests are open in the engine now. Polled often (every health check),
        which is what marks the moment the engine became busy."""
        if not busy:
            self._busy_since = None
            return None
        now = self._clock()
        if self._busy_since is None:
            self._busy_since = now
        quiet = now - max(self._last_step.value, self._busy_since)
        return quiet if self.timeout and quiet >= self.timeout else None
