"""bench/studies/stream_interval/stream_interval.py: the rotation of settings over rounds, and the
summary and table from serve_bench records (the figures of its committed run)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit.bench.scripts import load_script

STUDY = Path(__file__).resolve().parents[3] / "bench" / "studies" / "stream_interval"


def load_module() -> ModuleType:
    return load_script(STUDY / "stream_interval.py")


def record(points: list[tuple[int, float, bool]]) -> dict[str, object]:
    return {
        "points": [
            {"concurrency": c, "warmup": warmup, "status": "ok", "output_throughput": tok_s,
             "itl_p50_ms": 2.0, "itl_p99_ms": 4.0, "tpot_p50_ms": 2.0, "failed": 0}
            for c, tok_s, warmup in points
        ]
    }  # fmt: skip


def test_each_round_starts_at_the_next_setting() -> None:
    study = load_module()
    assert [study.rotation([1, 4, 16], r) for r in range(4)] == [
        [1, 4, 16],
        [4, 16, 1],
        [16, 1, 4],
        [1, 4, 16],
    ]


def test_summary_takes_medians_per_setting_against_the_first(tmp_path: Path) -> None:
    study = load_module()
    runs = {(1, 0): 100.0, (1, 1): 300.0, (1, 2): 200.0, (4, 0): 250.0, (4, 1): 150.0}  # (4, 2) is missing
    for (interval, r), tok_s in runs.items():
        path = tmp_path / f"si{interval}-r{r}.json"
        path.write_text(json.dumps(record([(32, 999.0, True), (32, tok_s, False)])))
    summary = study.summarize(tmp_path, [1, 4], 3)
    assert summary["32"]["1"]["median"]["tok_s"] == 200.0  # the warm-up point is left out
    assert summary["32"]["4"]["median"]["tok_s"] == 200.0
    assert summary["32"]["4"]["median_vs_first"] == pytest.approx(1.0)
    assert [run["round"] for run in summary["32"]["4"]["rounds"]] == [0, 1]
    assert "| 32 | 4 | 250, 150 | 200 | 1.000 |" in study.table(summary, "header")


def test_the_committed_runs_give_the_committed_table() -> None:
    study = load_module()
    results = STUDY / "2026-12-02-cpu-stream-interval"
    saved = json.loads((results / "stream_interval.json").read_text())
    summary = study.summarize(results, saved["intervals"], saved["rounds"])
    assert summary == saved["summary"]
    assert study.table(summary, "").splitlines()[2:] == (results / "table.md").read_text().splitlines()[2:]
