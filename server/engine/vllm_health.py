"""Whether the vLLM engine can serve: dead as AsyncLLM itself sees it, gone as the supervisor of
several front ends saw it, or hung (server/engine/stall.py).

AsyncLLM finds its engine dead only when the engine core says so, or, in a process that owns the
core, when the core's process exits. A front end of several owns no core, and a SIGKILLed or
stopped core says nothing: its requests would wait in silence. So when the engine is gone or hung
this module ends it the way AsyncLLM ends it when its own output handler fails: the client is
marked dead (every later call raises EngineDeadError) and every open request's queue gets
EngineDeadError, so each stream ends with an error at once. Both are read by attribute, guarded:
the same names in vLLM 0.26 and 0.32, but internal ones.
"""

from __future__ import annotations

import logging
from typing import Any

from vllm.v1.engine.exceptions import EngineDeadError

from server.engine.base import Flag
from server.engine.stall import StallWatch
from server.errors import EngineUnavailableError

logger = logging.getLogger(__name__)


def _open_requests(llm: Any) -> int:
    processor = getattr(llm, "output_processor", None)
    count = getattr(processor, "get_num_unfinished_requests", None)
    return int(count()) if callable(count) else 0


def fail_engine(llm: Any) -> None:
    """Mark the client dead and fail its open requests with EngineDeadError."""
    resources = getattr(getattr(llm, "engine_core", None), "resources", None)
    if resources is not None and hasattr(resources, "engine_dead"):
        resources.engine_dead = True
    processor = getattr(llm, "output_processor", None)
    if processor is not None and hasattr(processor, "propagate_error"):
        processor.propagate_error(EngineDeadError())


class EngineHealth:
    def __init__(self, llm: Any, stall: StallWatch, engine_gone: Flag | None) -> None:
        self._llm = llm
        self.stall = stall
        self._engine_gone = engine_gone

    async def check(self) -> None:
        """Raise EngineUnavailableError if the engine cannot serve; end its open requests if it
        is gone or hung and AsyncLLM has not seen it yet."""
        if self._engine_gone is not None and self._engine_gone.is_set() and not self._llm.errored:
            logger.error("the engine core (or another front end) has exited; ending open requests")
            fail_engine(self._llm)
        quiet = self.stall.stalled_for(busy=_open_requests(self._llm) > 0)
        if quiet is not None and not self._llm.errored:
            logger.error(
                "the engine is hung: no step for %.1f s while requests wait (--engine-stall-timeout %g)",
                quiet,
                self.stall.timeout,
            )
            fail_engine(self._llm)
        try:
            await self._llm.check_health()
        except EngineDeadError as exc:
            raise EngineUnavailableError("The engine is not running.") from exc
