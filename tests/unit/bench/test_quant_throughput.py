"""bench/studies/quant_throughput/quant_throughput.py: one row per measured point of each quantized
run, against bf16's."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest

STUDY = Path(__file__).resolve().parents[3] / "bench" / "studies" / "quant_throughput"


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # As when run as a script; it finds quant_memory, the study beside it, by itself.
    monkeypatch.syspath_prepend(str(STUDY))
    return importlib.import_module("quant_throughput")


def write_run(out: Path, shape: str, weights: float, throughputs: dict[int, float]) -> None:
    label = f"ours-{shape}-tp1"
    points = [
        {"concurrency": 64, "num_prompts": 64, "warmup": True, "status": "ok", "output_throughput": 1.0}
    ]
    for concurrency, throughput in throughputs.items():
        points.append(
            {
                "concurrency": concurrency,
                "num_prompts": concurrency * 3,
                "warmup": False,
                "status": "ok",
                "output_throughput": throughput,
                "ttft_p50_ms": 50.0,
                "ttft_p99_ms": 80.0,
                "itl_p50_ms": 7.0,
                "itl_p99_ms": 9.0,
                "tpot_p50_ms": 7.1,
                "completed": concurrency * 3,
                "failed": 0,
            }
        )
    points.append({"concurrency": 1, "num_prompts": 8, "warmup": False, "status": "skipped"})
    record = {"label": label, "command": ["python", "-m", "server"], "ready_s": 90.0, "jit_lines": 0}
    (out / f"{label}.json").write_text(json.dumps({**record, "points": points}))
    (out / f"{label}.server.log").write_text(
        f"Model loading took {weights} GiB memory and 1.0 seconds\nAvailable KV cache memory: 40.5 GiB\n"
    )


def test_rows_compare_each_measured_point_with_bf16(module: ModuleType, tmp_path: Path) -> None:
    write_run(tmp_path, "awq", 23.04, {256: 3000.0, 16: 1800.0})
    write_run(tmp_path, "bf16", 87.0, {256: 4000.0, 16: 1200.0})

    rows = module.rows(tmp_path)

    assert [(r["shape"], r["concurrency"]) for r in rows] == [
        ("bf16", 256),
        ("bf16", 16),
        ("awq", 256),
        ("awq", 16),
    ]
    awq = {r["concurrency"]: r for r in rows if r["shape"] == "awq"}
    assert awq[256]["vs_bf16"] == 0.75
    assert awq[16]["vs_bf16"] == 1.5
    assert awq[256]["weights_gib"] == 23.04
    assert awq[256]["kv_cache_gib"] == 40.5
    table = module.markdown(rows)
    assert "| awq | 23.04 | 40.5 | 256 (768) | 3,000 | 0.75 | 50.0 / 80.0 | 7.0 / 9.0 | 7.1 | 0 |" in table


def test_without_a_bf16_run_there_is_no_ratio(module: ModuleType, tmp_path: Path) -> None:
    write_run(tmp_path, "gptq", 24.74, {64: 5000.0})

    (row,) = module.rows(tmp_path)

    assert row["vs_bf16"] is None
    assert "| gptq | 24.74 | 40.5 | 64 (192) | 5,000 | - |" in module.markdown([row])
