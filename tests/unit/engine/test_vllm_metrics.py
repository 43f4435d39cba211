"""vLLM's own families with several front ends: each front end runs vLLM's Prometheus stat logger
(our subclass) on the reports it handles, and /metrics merges the processes' files. The scheduler
gauges must show the report the engine made last, whichever front end handled it when; the counters
must add up over the front ends.

Each front end is a real process (prometheus-client keys its multiprocess files by pid), forked from
this one so that vLLM's config need not be built again in each."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from vllm.usage.usage_lib import UsageContext
from vllm.v1.metrics.stats import PrefixCacheStats, SchedulerStats

from server.engine.vllm import engine_args, resolve_model_path
from server.engine.vllm_metrics import vllm_logger_class
from server.engine.vllm_stats import StatsRecorder
from server.observability.metrics import ServerMetrics
from tests.conftest import engine_settings
from tests.helpers import metric_value

LABELS = 'engine="0",model_name="tiny-mixtral"'


@pytest.fixture(scope="module")
def vllm_config() -> Any:
    settings = engine_settings()
    args = engine_args(settings, resolve_model_path(settings))
    return args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return str(tmp_path)


def _front_end_handles(vllm_config: Any, made_at: float, stats: SchedulerStats) -> None:
    """One front end: its engine client fetches a message the engine core stamped `made_at`, then
    vLLM's output loop records the stats that came with it."""
    from prometheus_client import values

    # This process was forked from one that imported prometheus-client before the variable was set;
    # the library picks its value class (in-memory or multiprocess files) at import.
    values.ValueClass = values.get_value_class()
    recorder = StatsRecorder()
    message = SimpleNamespace(timestamp=made_at)

    async def fetch() -> Any:
        return message

    core = SimpleNamespace(get_output_async=fetch)
    recorder.follow(core)
    asyncio.run(core.get_output_async())
    logger = vllm_logger_class(recorder)(vllm_config, [0])
    logger.record(scheduler_stats=stats, iteration_stats=None)


def _in_a_front_end(vllm_config: Any, made_at: float, stats: SchedulerStats) -> None:
    proc = multiprocessing.get_context("fork").Process(
        target=_front_end_handles, args=(vllm_config, made_at, stats)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0


def _report(running: int, waiting: int, usage: float, queries: int = 0, hits: int = 0) -> SchedulerStats:
    return SchedulerStats(
        num_running_reqs=running,
        num_waiting_reqs=waiting,
        kv_cache_usage=usage,
        prefix_cache_stats=PrefixCacheStats(queries=queries, hits=hits),
    )


def test_a_late_handled_older_report_does_not_replace_the_engines_last(
    vllm_config: Any, metrics_dir: str
) -> None:
    # The engine's last step (all done) reached one front end; a busy front end then handles an
    # earlier step's report. By the front ends' clocks, 5 running would stay for good.
    _in_a_front_end(vllm_config, 200.0, _report(0, 0, 0.0))
    _in_a_front_end(vllm_config, 100.0, _report(5, 2, 0.4))
    text = ServerMetrics(multiprocess_dir=metrics_dir).render().decode()
    assert metric_value(text, "vllm:num_requests_running", LABELS) == 0
    assert metric_value(text, "vllm:num_requests_waiting", LABELS) == 0
    assert metric_value(text, "vllm:kv_cache_usage_perc", LABELS) == 0
    assert f"vllm:num_requests_waiting{{{LABELS}}} 0.0" in text  # present, not left out of the merge


def test_a_newer_report_wins_and_the_counters_add_up_over_front_ends(
    vllm_config: Any, metrics_dir: str
) -> None:
    _in_a_front_end(vllm_config, 100.0, _report(3, 1, 0.2, queries=10, hits=4))
    _in_a_front_end(vllm_config, 150.0, _report(7, 0, 0.5, queries=6, hits=1))
    text = ServerMetrics(multiprocess_dir=metrics_dir).render().decode()
    assert metric_value(text, "vllm:num_requests_running", LABELS) == 7
    assert metric_value(text, "vllm:kv_cache_usage_perc", LABELS) == 0.5
    assert metric_value(text, "vllm:prefix_cache_queries_total", LABELS) == 16
    assert metric_value(text, "vllm:prefix_cache_hits_total", LABELS) == 5
