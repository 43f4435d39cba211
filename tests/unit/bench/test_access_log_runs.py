"""bench/tools/access_log_runs.py: the server's own per-run throughput, from its access log lines."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from types import ModuleType

from tests.unit.bench.scripts import load_script

TOOLS = Path(__file__).resolve().parents[3] / "bench" / "tools"
T0 = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)


def load_module() -> ModuleType:
    return load_script(TOOLS / "access_log_runs.py")


def access_line(end_s: float, duration_s: float, tokens: int, ttfb_ms: float, **extra: object) -> str:
    entry = {
        "time": (T0 + datetime.timedelta(seconds=end_s)).isoformat(timespec="milliseconds"),
        "logger": "server.access",
        "path": "/v1/chat/completions",
        "status": 200,
        "duration_ms": duration_s * 1000,
        "ttfb_ms": ttfb_ms,
        "prompt_tokens": 520,
        "completion_tokens": tokens,
        **extra,
    }
    return json.dumps(entry)


def test_runs_are_split_at_idle_gaps_and_timed_from_first_start_to_last_end(tmp_path: Path) -> None:
    lines = [
        access_line(10.0, 10.0, 100, 50.0),  # run 0: 0..10 s
        access_line(12.0, 8.0, 100, 70.0),  # starts at 4 s, ends at 12 s: still run 0
        access_line(30.0, 10.0, 300, 90.0),  # starts at 20 s, 8 s after the last end: run 1
        access_line(31.0, 1.0, 7, 5.0, status=400),  # failed requests are not counted
        access_line(31.0, 1.0, 7, 5.0, path="/v1/completions"),  # another endpoint
        '{"time": "x", "logger": "uvicorn.error", "message": "Application startup complete."}',
    ]
    log = tmp_path / "server.log"
    log.write_text("\n".join(f"(pid=1) {line}" if i == 0 else line for i, line in enumerate(lines)) + "\n")
    module = load_module()
    runs = [
        module.summarize(run)
        for run in module.split_runs(module.access_lines(log, "/v1/chat/completions"), 1.0)
    ]
    assert [r["requests"] for r in runs] == [2, 1]
    assert runs[0]["span_s"] == 12.0 and runs[0]["output_tokens_per_s"] == round(200 / 12, 1)
    assert runs[1]["output_tokens_per_s"] == 30.0
    assert runs[0]["ttfb_p50_ms"] == 60.0
