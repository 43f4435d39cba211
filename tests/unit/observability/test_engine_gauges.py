"""The engine gauges with several front ends: each front end holds the latest engine report it
handled, and /metrics must show the one the engine made last, whichever front end handled it when.

Each front end is a real process here (prometheus-client keys its multiprocess files by pid)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from server.engine.base import EngineStats
from server.observability.metrics import ServerMetrics
from tests.helpers import metric_value


def _front_end_reports(metrics_dir: str, stats: EngineStats) -> None:
    ServerMetrics(multiprocess_dir=metrics_dir).record_engine_stats(stats)


def _in_a_front_end(metrics_dir: str, stats: EngineStats) -> None:
    proc = multiprocessing.get_context("spawn").Process(target=_front_end_reports, args=(metrics_dir, stats))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # read by the spawned processes
    return str(tmp_path)


def test_a_late_handled_older_report_does_not_replace_the_engines_last(metrics_dir: str) -> None:
    # The engine's last step (all aborted) reached one front end, which published it; a busy front
    # end then handles an earlier step's report. Ordered by handling time, 5 would stay for good.
    _in_a_front_end(metrics_dir, EngineStats(running=0, waiting=0, kv_cache_usage=0.0, made_at=200.0))
    _in_a_front_end(metrics_dir, EngineStats(running=5, waiting=2, kv_cache_usage=0.4, made_at=100.0))
    text = ServerMetrics(multiprocess_dir=metrics_dir).render().decode()
    assert metric_value(text, "mixtral_num_requests_running") == 0
    assert metric_value(text, "mixtral_num_requests_waiting") == 0
    assert metric_value(text, "mixtral_kv_cache_usage_perc") == 0


def test_a_newer_report_replaces_an_older_one_from_another_front_end(metrics_dir: str) -> None:
    _in_a_front_end(metrics_dir, EngineStats(running=3, waiting=1, kv_cache_usage=0.2, made_at=100.0))
    _in_a_front_end(metrics_dir, EngineStats(running=7, waiting=0, kv_cache_usage=0.5, made_at=150.0))
    text = ServerMetrics(multiprocess_dir=metrics_dir).render().decode()
    assert metric_value(text, "mixtral_num_requests_running") == 7
    assert metric_value(text, "mixtral_kv_cache_usage_perc") == 0.5


def test_before_any_engine_step_the_gauges_read_0(metrics_dir: str) -> None:
    _in_a_front_end(metrics_dir, EngineStats())
    text = ServerMetrics(multiprocess_dir=metrics_dir).render().decode()
    assert metric_value(text, "mixtral_num_requests_running") == 0
    assert "mixtral_num_requests_running " in text  # present, not left out of the merge
