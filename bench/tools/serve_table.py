"""Markdown comparison tables for the JSON results serve_bench.py writes: one table per pair of runs
(a `vllm serve` baseline and ours), one row per point, the baseline's figures beside ours."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

Record = dict[str, Any]
Point = dict[str, Any]

HEADER = (
    "| concurrency (prompts) | out tok/s theirs | out tok/s ours | ours / theirs "
    "| TTFT p50 / p99 ms theirs | TTFT p50 / p99 ms ours | ITL p50 / p99 ms theirs | ITL p50 / p99 ms ours "
    "| TPOT p50 ms theirs | TPOT p50 ms ours | failed theirs / ours |\n" + "|---" * 11 + "|"
)


def load_records(directory: Path) -> dict[str, Record]:
    """label -> record, for every results file in `directory` (the clients' own files are skipped)."""
    records = {}
    for path in sorted(directory.glob("*.json")):
        if path.name.endswith(".result.json"):
            continue
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "points" in data and "label" in data:
            records[data["label"]] = data
    return records


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def fmt_pair(point: Point | None, metric: str) -> str:
    if point is None or point.get("status") != "ok":
        return status_text(point)
    return f"{fmt_ms(point.get(metric + '_p50_ms'))} / {fmt_ms(point.get(metric + '_p99_ms'))}"


def status_text(point: Point | None) -> str:
    return "not run" if point is None else str(point.get("status"))


def fmt_throughput(point: Point | None) -> str:
    if point is None or point.get("status") != "ok" or point.get("output_throughput") is None:
        return status_text(point)
    return f"{point['output_throughput']:,.0f}"


def fmt_single(point: Point | None, key: str) -> str:
    if point is None or point.get("status") != "ok":
        return status_text(point)
    return fmt_ms(point.get(key))


def ratio(theirs: Point | None, ours: Point | None) -> str:
    values = [p.get("output_throughput") if p and p.get("status") == "ok" else None for p in (theirs, ours)]
    if values[0] is None or values[1] is None or not values[0]:
        return "-"
    return f"{values[1] / values[0]:.2f}"


def fmt_failed(theirs: Point | None, ours: Point | None) -> str:
    return " / ".join(
        str(p.get("failed", "-")) if p and p.get("status") == "ok" else "-" for p in (theirs, ours)
    )


def point_key(point: Point) -> tuple[int, int, bool]:
    return (point["concurrency"], point["num_prompts"], bool(point.get("warmup")))


def row(key: tuple[int, int, bool], theirs: Point | None, ours: Point | None) -> str:
    name = f"{key[0]} ({key[1]:,}{', warm-up' if key[2] else ''})"
    cells = [
        name,
        fmt_throughput(theirs),
        fmt_throughput(ours),
        ratio(theirs, ours),
        fmt_pair(theirs, "ttft"),
        fmt_pair(ours, "ttft"),
        fmt_pair(theirs, "itl"),
        fmt_pair(ours, "itl"),
        fmt_single(theirs, "tpot_p50_ms"),
        fmt_single(ours, "tpot_p50_ms"),
        fmt_failed(theirs, ours),
    ]
    return "| " + " | ".join(cells) + " |"


def summary_table(theirs: Record, ours: Record) -> str:
    def cell(record: Record, key: str) -> str:
        value = record.get(key)
        return "-" if value is None else str(value)

    lines = [
        f"| | theirs: `{theirs['label']}` ({theirs['server']}) "
        f"| ours: `{ours['label']}` ({ours['server']}) |",
        "|---|---|---|",
        f"| ready after launch, s | {cell(theirs, 'ready_s')} | {cell(ours, 'ready_s')} |",
        f'| log lines "JIT compilation during inference" | {cell(theirs, "jit_lines")} '
        f"| {cell(ours, 'jit_lines')} |",
        f"| vLLM | {version(theirs)} | {version(ours)} |",
    ]
    if theirs.get("error") or ours.get("error"):
        lines.append(f"| run error | {cell(theirs, 'error')} | {cell(ours, 'error')} |")
    return "\n".join(lines)


def version(record: Record) -> str:
    return str(record.get("host", {}).get("vllm_version"))


def commands(record: Record) -> list[str]:
    lines = [f"- `{record['label']}` server: `{shlex.join(record['command'])}`"]
    first = next((p for p in record["points"] if p.get("client_command")), None)
    if first is not None:
        lines.append(f"- `{record['label']}` client (first point): `{shlex.join(first['client_command'])}`")
    return lines


def render_pair(theirs: Record, ours: Record) -> str:
    theirs_points = {point_key(p): p for p in theirs["points"]}
    ours_points = {point_key(p): p for p in ours["points"]}
    keys = list(theirs_points) + [k for k in ours_points if k not in theirs_points]
    rows = [row(k, theirs_points.get(k), ours_points.get(k)) for k in keys]
    parts = [
        f"## `{ours['label']}` vs `{theirs['label']}`",
        summary_table(theirs, ours),
        "\n".join([HEADER, *rows]),
        "\n".join(commands(theirs) + commands(ours)),
    ]
    return "\n\n".join(parts) + "\n"


def pairs(records: dict[str, Record], baselines: list[str], ours: list[str]) -> list[tuple[Record, Record]]:
    """Named pairs in order; one baseline goes with every `--ours`; none named: every vllm x every ours."""
    if not baselines and not ours:
        by_time = sorted(records.values(), key=lambda r: r.get("started_at", ""))
        theirs_runs = [r for r in by_time if r["server"] == "vllm"]
        return [(t, o) for t in theirs_runs for o in by_time if o["server"] == "ours"]
    if len(baselines) == 1:
        baselines = baselines * len(ours)
    if len(baselines) != len(ours):
        raise SystemExit("give one --baseline, or as many as --ours")
    return [(records[b], records[o]) for b, o in zip(baselines, ours, strict=True)]


def render(records: dict[str, Record], baselines: list[str], ours: list[str]) -> str:
    chosen = pairs(records, baselines, ours)
    if not chosen:
        return "No pair of runs (one `vllm`, one `ours`) found.\n"
    return "\n".join(render_pair(t, o) for t, o in chosen)


def table_main(directory: Path, baselines: list[str], ours: list[str], output: Path | None) -> int:
    text = render(load_records(directory), baselines, ours)
    (output or directory / "table.md").write_text(text)
    sys.stdout.write(text)
    return 0
