"""vLLM's stat-logger interface, read into ours: the latest scheduler numbers (EngineStats) and each
step's latency samples (StepTimings), handed to whoever listens (metrics, the stall watch).

With N front ends the scheduler's numbers of a step reach ONE of them (vLLM attaches them to the
first client with outputs in that step, else to client 0), and each front end handles its messages
when its own event loop gets to them. Ordered by when a front end handled them, a busy front end can
publish step k's "5 running" after another published the last step's "0", and on an idle engine no
later step comes to correct it. So each report carries the time the engine core made it
(`EngineStats.made_at`): the `timestamp` of vLLM's EngineCoreOutputs message, set by the one engine
core on its monotonic clock, present in vLLM 0.26 and 0.32. The stat-logger call does not receive
that message, so `follow` wraps the client's `get_output_async`: vLLM's output loop fetches one
message, processes it and calls `record` before it fetches the next, so the stamp kept at the fetch
is the stamp of the stats being recorded. The metrics then keep, across front ends, the report the
engine made last (observability/metrics.py).

Chosen over counting each front end's own requests in the engine: that count is only what the front
end believes (an abort is sent but not yet done), cannot split running from waiting, and says
nothing of the KV cache; the engine's own numbers, put in the engine's order, stay exact."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
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
        self._made_at = 0.0  # the engine core's stamp of the message being handled
        # vLLM's own families with one process (engine/vllm_metrics.py): the registry they go in.
        self.registry = CollectorRegistry(auto_describe=True)

    @property
    def made_at(self) -> float:
        """The engine core's stamp of the message being handled (0 before the first)."""
        return self._made_at

    def follow(self, engine_core: Any) -> None:
        """Keep each message's engine-side stamp as vLLM's output loop fetches it (see the module
        docstring). Without it (a client that has no such method) reports carry made_at 0."""
        fetch = getattr(engine_core, "get_output_async", None)
        if fetch is None:
            logger.warning("engine client without get_output_async: engine gauges are not ordered")
            return

        async def stamped() -> Any:
            outputs = await fetch()
            self._made_at = float(getattr(outputs, "timestamp", 0.0) or 0.0)
            return outputs

        engine_core.get_output_async = stamped

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
            made_at=self._made_at,
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
