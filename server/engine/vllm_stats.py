"""vLLM's stat-logger interface, read into ours: the latest scheduler numbers (EngineStats) and each
step's latency samples (StepTimings), handed to whoever listens (metrics, the stall watch)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from vllm.v1.metrics.loggers import StatLoggerBase

from server.engine.base import EngineStats, StepTimings

logger = logging.getLogger(__name__)


class StatsRecorder(StatLoggerBase):
    """Keeps the latest scheduler numbers and hands out each step's latency samples; vLLM calls
    `record` on the event loop once per step. Scheduler stats come from the engine core (to one
    front end at a time); iteration stats from this process's own requests.

    It must never raise: an exception here would kill vLLM's output handler."""

    def __init__(self, vllm_config: Any = None, engine_index: int = 0) -> None:
        self.latest = EngineStats()
        self.listeners: list[Callable[[EngineStats], None]] = []
        self.timing_listeners: list[Callable[[StepTimings], None]] = []
        self.heartbeat: Callable[[], None] = lambda: None  # every message from the engine core

    def record(
        self,
        scheduler_stats: Any,
        iteration_stats: Any,
        mm_cache_stats: Any = None,
        engine_idx: int = 0,
    ) -> None:
        try:
            self.heartbeat()
            if scheduler_stats is not None:
                self._record_scheduler(scheduler_stats)
            if iteration_stats is not None and self.timing_listeners:
                self._record_timings(iteration_stats)
        except Exception:  # see the docstring: never raise into vLLM
            logger.debug("could not record engine stats", exc_info=True)

    def _record_scheduler(self, scheduler_stats: Any) -> None:
        self.latest = EngineStats(
            running=int(scheduler_stats.num_running_reqs),
            waiting=int(scheduler_stats.num_waiting_reqs),
            kv_cache_usage=float(scheduler_stats.kv_cache_usage),
            steps=self.latest.steps + 1,
        )
        for listener in self.listeners:
            listener(self.latest)

    def _record_timings(self, iteration_stats: Any) -> None:
        timings = StepTimings(
            inter_token_latencies=tuple(iteration_stats.inter_token_latencies_iter),
            queue_times=tuple(r.queued_time for r in iteration_stats.finished_requests),
        )
        if timings.inter_token_latencies or timings.queue_times:
            for listener in self.timing_listeners:
                listener(timings)

    def log_engine_initialized(self) -> None:
        pass
