"""What /metrics shows besides the engine: counters at 0 before their first event, latency buckets
up to the request timeout, process_*/python_* (per front end with several), and name[] filtering."""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.observability.known_labels import REJECTION_REASONS
from server.observability.metrics import ServerMetrics
from tests.helpers import metric_value

SERVER = Path(__file__).resolve().parents[3] / "server"


def test_every_rejection_reason_and_answered_finish_reason_starts_at_0() -> None:
    text = ServerMetrics(model="m").render().decode()
    for reason in REJECTION_REASONS:
        assert f'mixtral_rejected_requests_total{{reason="{reason}"}} 0.0' in text
    for reason in ("stop", "length", "abort", "timeout", "error"):
        labels = f'endpoint="/v1/chat/completions",finish_reason="{reason}",model="m",status="200"'
        assert f"mixtral_requests_total{{{labels}}} 0.0" in text
    assert 'mixtral_request_success_total{finish_reason="length"} 0.0' in text
    assert 'mixtral_client_disconnects_total{endpoint="/v1/completions"} 0.0' in text


def test_the_configured_keys_counters_start_at_0() -> None:
    metrics = ServerMetrics()
    metrics.start_keys(["alice"])
    text = metrics.render().decode()
    assert 'mixtral_api_key_requests_total{key="alice"} 0.0' in text
    assert 'mixtral_api_key_tokens_total{key="alice",kind="completion"} 0.0' in text
    assert 'mixtral_api_key_requests_in_flight{key="alice"} 0.0' in text


def test_every_rejection_code_in_the_source_is_a_known_reason() -> None:
    """A new refusal code must be added to known_labels, or its first refusals go uncounted."""
    source = "\n".join(p.read_text() for p in (SERVER / "admission").glob("*.py"))
    codes = set(re.findall(r'code="(\w+)"', source))
    codes |= {f"{kind}_per_minute_exceeded" for kind in ("requests", "tokens")}  # code=f"{kind}_..."
    assert codes - {"shared_state_unavailable"} <= set(REJECTION_REASONS)
    assert "shared_state_unavailable" in REJECTION_REASONS


@pytest.mark.parametrize(("timeout", "last"), [(600.0, 600.0), (None, 600.0), (1800.0, 1800.0)])
def test_end_to_end_and_queue_buckets_reach_the_request_timeout(timeout: float | None, last: float) -> None:
    text = ServerMetrics(request_timeout=timeout).render().decode()
    for family in ("mixtral_e2e_request_latency_seconds", "mixtral_request_queue_time_seconds"):
        edges = re.findall(rf'^{family}_bucket{{le="([0-9.]+)"}}', text, flags=re.MULTILINE)
        assert max(map(float, edges)) == last
        assert 120.0 in map(float, edges)


def test_one_process_shows_its_process_and_python_series() -> None:
    text = ServerMetrics().render().decode()
    assert metric_value(text, "process_resident_memory_bytes") > 0
    assert metric_value(text, "process_open_fds") > 0
    assert "python_info{" in text
    assert "python_gc_collections_total{" in text


def test_name_filter_keeps_only_the_named_samples() -> None:
    text = ServerMetrics().render(["mixtral_num_requests_waiting", "process_open_fds"]).decode()
    samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    assert samples == {"mixtral_num_requests_waiting", "process_open_fds"}


def _front_end(metrics_dir: str, ready: Any, done: Any) -> None:
    ServerMetrics(multiprocess_dir=metrics_dir).prompt_tokens.inc(3)
    ready.set()
    done.wait(60)


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # read by the spawned processes
    return str(tmp_path)


@pytest.fixture
def two_front_ends(metrics_dir: str) -> Iterator[list[int]]:
    """Two live front ends that wrote their files, and the pid of one that wrote and exited."""
    ctx = multiprocessing.get_context("spawn")
    procs, dones = [], []
    for _ in range(3):
        ready, done = ctx.Event(), ctx.Event()  # one each: a process killed inside wait() breaks an Event
        proc = ctx.Process(target=_front_end, args=(metrics_dir, ready, done))
        proc.start()
        assert ready.wait(60)
        procs.append(proc)
        dones.append(done)
    dones[2].set()  # the third exits; its files stay, as a front end's that ended
    procs[2].join(10)
    try:
        yield [p.pid for p in procs if p.pid is not None]
    finally:
        for done, proc in zip(dones, procs, strict=True):
            done.set()
            proc.join(10)


def test_several_front_ends_show_each_live_ones_process_series_by_pid(
    metrics_dir: str, two_front_ends: list[int]
) -> None:
    text = ServerMetrics(multiprocess_dir=metrics_dir).render().decode()
    live, dead = two_front_ends[:2], two_front_ends[2]
    for pid in live:
        assert metric_value(text, "process_resident_memory_bytes", f'pid="{pid}"') > 0
    assert f'pid="{dead}"' not in text
    assert metric_value(text, "process_open_fds", f'pid="{os.getpid()}"') > 0  # the one answering
    assert "python_info{" in text
    assert "python_gc_" not in text  # inside each interpreter: not readable from another process
    assert metric_value(text, "mixtral_prompt_tokens_total") == 9  # the dead one's count stays


def test_name_filter_with_several_front_ends(metrics_dir: str, two_front_ends: list[int]) -> None:
    text = ServerMetrics(multiprocess_dir=metrics_dir).render(["mixtral_prompt_tokens_total"]).decode()
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "mixtral_prompt_tokens_total 9.0"
    ]
