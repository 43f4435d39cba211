"""The server's own view of a benchmark: per-run throughput and time to first byte from its access log.

    python bench/tools/access_log_runs.py SERVER_LOG [--gap 1.0] [--json OUT.json]

Reads our server's JSON access lines (logger `server.access`: end time, duration_ms, ttfb_ms,
completion_tokens) for one endpoint, groups the requests into runs (a request that starts more than
--gap seconds after every earlier one has ended begins a new run: the idle time between two client
invocations) and prints, per run: requests, output tokens, the span from the first request's start
to the last one's end, output tokens per second over that span, and TTFB percentiles. A load tester
that measures correctly reports what the server saw; this is the third number to hold both clients
to. Its percentiles are mixtral-load's own (clients/load/stats.py), so the two read alike; it needs
the checkout and httpx (which the clients package imports), as load_vs_vllm.py does.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, for clients.load
from clients.load.stats import percentile  # noqa: E402


def access_lines(path: Path, endpoint: str) -> list[tuple[float, float, dict[str, Any]]]:
    """(start, end, line) per request to `endpoint`, in start order."""
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if '"server.access"' not in line:
            continue
        entry = json.loads(line[line.index("{") :])
        if entry.get("path") != endpoint or entry.get("status") != 200:
            continue
        end = datetime.datetime.fromisoformat(entry["time"]).timestamp()
        rows.append((end - entry["duration_ms"] / 1000, end, entry))
    return sorted(rows, key=lambda row: row[0])


def split_runs(rows: list[tuple[float, float, dict[str, Any]]], gap_s: float) -> list[list[Any]]:
    runs: list[list[Any]] = []
    last_end = float("-inf")
    for row in rows:
        if not runs or row[0] > last_end + gap_s:
            runs.append([])
            last_end = row[1]
        runs[-1].append(row)
        last_end = max(last_end, row[1])
    return runs


def summarize(run: list[tuple[float, float, dict[str, Any]]]) -> dict[str, Any]:
    tokens = sum(entry.get("completion_tokens") or 0 for _, _, entry in run)
    span = max(end for _, end, _ in run) - min(start for start, _, _ in run)
    ttfb = [entry["ttfb_ms"] for _, _, entry in run if entry.get("ttfb_ms") is not None]
    return {
        "requests": len(run),
        "output_tokens": tokens,
        "span_s": round(span, 2),
        "output_tokens_per_s": round(tokens / span, 1) if span > 0 else None,
        "ttfb_p50_ms": round(percentile(ttfb, 50), 1) if ttfb else None,
        "ttfb_p99_ms": round(percentile(ttfb, 99), 1) if ttfb else None,
        "prompt_tokens_p50": statistics.median(entry.get("prompt_tokens") or 0 for _, _, entry in run),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("log", type=Path)
    parser.add_argument("--endpoint", default="/v1/chat/completions")
    parser.add_argument("--gap", type=float, default=1.0, help="idle seconds that separate two runs")
    parser.add_argument("--json", type=Path, help="also write the runs here")
    args = parser.parse_args(argv)
    runs = [summarize(run) for run in split_runs(access_lines(args.log, args.endpoint), args.gap)]
    for i, run in enumerate(runs):
        ttfb = f"{run['ttfb_p50_ms']}/{run['ttfb_p99_ms']}"
        print(  # noqa: T201
            f"run {i}: {run['requests']:5d} requests {run['output_tokens']:8d} tokens"
            f" in {run['span_s']:7.2f} s = {run['output_tokens_per_s']} tok/s, TTFB p50/p99 {ttfb} ms"
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
