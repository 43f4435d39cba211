"""bench/tools/serve_table.py turns two serve_bench.py results into one comparison table."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from tests.unit.bench.scripts import load_script

TOOLS = Path(__file__).resolve().parents[3] / "bench" / "tools"


def load_table_module() -> ModuleType:
    return load_script(TOOLS / "serve_table.py")


def point(concurrency: int, prompts: int, throughput: float, ttft: float, warmup: bool = False) -> dict:
    return {
        "concurrency": concurrency,
        "num_prompts": prompts,
        "warmup": warmup,
        "status": "ok",
        "output_throughput": throughput,
        "ttft_p50_ms": ttft,
        "ttft_p99_ms": ttft * 2,
        "itl_p50_ms": 6.9,
        "itl_p99_ms": 12.1,
        "tpot_p50_ms": 7.0,
        "completed": prompts,
        "failed": 0,
        "duration_s": 10.0,
        "client_command": ["python", "-m", "vllm.entrypoints.cli.main", "bench", "serve"],
    }


def record(label: str, server: str, points: list[dict], jit: int) -> dict:
    return {
        "label": label,
        "server": server,
        "command": ["python", "-m", "server"] if server == "ours" else ["python", "-m", "vllm", "serve"],
        "started_at": "2026-11-23T00:00:00+00:00",
        "ready_s": 133.0 if server == "vllm" else 95.5,
        "jit_lines": jit,
        "host": {"vllm_version": "0.26.0"},
        "points": points,
    }


def write_results(directory: Path) -> None:
    theirs = record(
        "vllm-bf16",
        "vllm",
        [
            point(256, 400, 7000.0, 1500.0, warmup=True),
            point(64, 640, 4000.0, 588.0),
            point(1, 16, 190.0, 21.8),
        ],
        jit=1,
    )
    skipped = {
        "concurrency": 1,
        "num_prompts": 16,
        "warmup": False,
        "status": "skipped",
        "reason": "deadline",
    }
    ours = record(
        "ours-bf16",
        "ours",
        [point(256, 400, 7100.0, 1400.0, warmup=True), point(64, 640, 5000.0, 400.0), skipped],
        jit=0,
    )
    for data in (theirs, ours):
        (directory / f"{data['label']}.json").write_text(json.dumps(data))
    # The client's own result files sit beside ours and must be ignored.
    (directory / "vllm-bf16.c64.n640.result.json").write_text(json.dumps({"output_throughput": 1.0}))


def row_cells(text: str, prefix: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {prefix} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_table_shows_both_servers_and_the_ratio_ours_over_theirs(tmp_path: Path) -> None:
    table = load_table_module()
    write_results(tmp_path)
    assert table.table_main(tmp_path, ["vllm-bf16"], ["ours-bf16"], None) == 0
    text = (tmp_path / "table.md").read_text()
    cells = row_cells(text, "64 (640)")
    assert cells[1:4] == ["4,000", "5,000", "1.25"]
    assert cells[4:6] == ["588 / 1,176", "400 / 800"]
    assert cells[-1] == "0 / 0"
    assert row_cells(text, "256 (400, warm-up)")[3] == "1.01"


def test_a_skipped_point_shows_as_skipped_and_has_no_ratio(tmp_path: Path) -> None:
    table = load_table_module()
    write_results(tmp_path)
    text = table.render(table.load_records(tmp_path), ["vllm-bf16"], ["ours-bf16"])
    cells = row_cells(text, "1 (16)")
    assert cells[1:4] == ["190", "skipped", "-"]
    assert cells[5] == "skipped"


def test_summary_has_ready_time_and_jit_lines_and_pairs_found_without_labels(tmp_path: Path) -> None:
    table = load_table_module()
    write_results(tmp_path)
    text = table.render(table.load_records(tmp_path), [], [])
    assert text.count("## `ours-bf16` vs `vllm-bf16`") == 1
    assert "| ready after launch, s | 133.0 | 95.5 |" in text
    assert '| log lines "JIT compilation during inference" | 1 | 0 |' in text
