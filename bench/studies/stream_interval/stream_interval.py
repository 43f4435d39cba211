"""Our server at several `--stream-interval` settings (tokens per streamed event), one server at a
time, in rotating rounds, under the same `vllm bench serve` load: throughput and inter-token
latency per setting and concurrency, and the median over rounds against interval 1.

Each run is one `serve_bench.py run` (its own server start, a warm-up point, then each point; each
point draws its own prompts). Round r starts at the r-th setting of the list, so that a machine that
warms up or slows down over the session does not favour one setting. By default it serves the
embedded tiny Mixtral (the CPU engine).

    python bench/studies/stream_interval/stream_interval.py --out DIR --rounds 3 --intervals 1,4,16 \
        -- --max-num-seqs 128 --max-model-len 1024
    python bench/studies/stream_interval/stream_interval.py --out DIR --table-only --rounds 3

Writes DIR/si<N>-r<round>.json (serve_bench's records), DIR/stream_interval.json and DIR/table.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench" / "tools"))

from side_by_side import (  # noqa: E402
    add_run_arguments,
    points_of,
    serve_bench_run,
    tiny_model_dir,
    write_results,
)

log = logging.getLogger("stream_interval")


def rotation(intervals: list[int], round_index: int) -> list[int]:
    shift = round_index % len(intervals)
    return intervals[shift:] + intervals[:shift]


def summarize(out: Path, intervals: list[int], rounds: int) -> dict[str, Any]:
    """Per concurrency and interval: each round's throughput, ITL p50/p99 and TPOT p50, their
    medians, and the median throughput against interval 1's."""
    rows: dict[int, dict[int, list[dict[str, Any]]]] = {}
    for r in range(rounds):
        for interval in intervals:
            path = out / f"si{interval}-r{r}.json"
            if not path.exists():
                continue
            for c, point in points_of(json.loads(path.read_text())).items():
                rows.setdefault(c, {}).setdefault(interval, []).append(
                    {
                        "round": r,
                        "tok_s": point.get("output_throughput"),
                        "itl_p50_ms": point.get("itl_p50_ms"),
                        "itl_p99_ms": point.get("itl_p99_ms"),
                        "tpot_p50_ms": point.get("tpot_p50_ms"),
                        "failed": point.get("failed") or 0,
                    }
                )
    summary: dict[str, Any] = {}
    for c, by_interval in sorted(rows.items()):
        entry: dict[str, Any] = {}
        for interval, runs in sorted(by_interval.items()):
            medians = {
                key: statistics.median(v for run in runs if (v := run[key]) is not None)
                for key in ("tok_s", "itl_p50_ms", "itl_p99_ms", "tpot_p50_ms")
                if any(run[key] is not None for run in runs)
            }
            entry[str(interval)] = {"rounds": runs, "median": medians}
        base = entry.get(str(intervals[0]), {}).get("median", {}).get("tok_s")
        for interval_entry in entry.values():
            tok_s = interval_entry["median"].get("tok_s")
            interval_entry["median_vs_first"] = tok_s / base if base and tok_s else None
        summary[str(c)] = entry
    return summary


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def table(summary: dict[str, Any], header: str) -> str:
    lines = [
        header,
        "",
        "| concurrency | interval | tok/s per round | median tok/s | vs first | ITL p50 ms | ITL p99 ms "
        "| TPOT p50 ms | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c, entry in summary.items():
        for interval, data in entry.items():
            per_round = ", ".join(f"{run['tok_s']:.0f}" for run in data["rounds"] if run["tok_s"])
            m = data["median"]
            ratio = data["median_vs_first"]
            lines.append(
                f"| {c} | {interval} | {per_round} | {m.get('tok_s', 0):.0f} "
                f"| {'' if ratio is None else f'{ratio:.3f}'} | {_ms(m.get('itl_p50_ms'))} "
                f"| {_ms(m.get('itl_p99_ms'))} | {_ms(m.get('tpot_p50_ms'))} "
                f"| {sum(run['failed'] for run in data['rounds'])} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, points="1:32,32:1536", warmup="32:256", rounds=3)
    parser.add_argument("--intervals", default="1,4,16", help="the first is the reference")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.server_args = [a for a in args.server_args if a != "--"]
    intervals = [int(i) for i in args.intervals.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    model_args = ["--model-dir", str(args.model_dir or tiny_model_dir())]
    failures = 0
    if not args.table_only:
        for r in range(args.rounds):
            for interval in rotation(intervals, r):
                label, extra = f"si{interval}-r{r}", ["--stream-interval", str(interval)]
                failures += serve_bench_run(args, "ours", label, model_args, extra) != 0
    summary = summarize(args.out, intervals, args.rounds)
    header = (
        f"Ours at `--stream-interval` {', '.join(map(str, intervals))}, {args.rounds} rotating rounds, "
        f"random {args.input_len} in / {args.output_len} out, engine args `{' '.join(args.server_args)}`"
    )
    record = {"intervals": intervals, "summary": summary, "failed_runs": failures}
    write_results(args, "stream_interval", record, table(summary, header))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
