"""`vllm serve` and ours, one at a time, in alternating rounds, under the same `vllm bench serve` load
and the same engine arguments: the ratio ours/theirs per round and concurrency, and its median.

Each run is one `serve_bench.py run` (its own server start, the same client command, JSON per run);
round r starts with `vllm serve` when r is even and with ours when it is odd, so that a machine that
warms up or slows down over the session does not favour one side. By default it serves the embedded
tiny Mixtral (the CPU engine); `--model-dir` or `--prepare-dummy` as in serve_bench.py for a real one.

    python bench/tools/side_by_side.py --out bench/results/DATE-cpu-side-by-side --rounds 2 \
        -- --max-num-seqs 128 --kv-cache-memory-bytes 1073741824 --max-model-len 1024
    python bench/tools/side_by_side.py --out DIR --table-only   # the table again from DIR's runs

Writes DIR/<server>-r<round>.json (serve_bench's records), DIR/side_by_side.json and DIR/table.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVE_BENCH = ROOT / "bench" / "tools" / "serve_bench.py"
SERVERS = ("vllm", "ours")
log = logging.getLogger("side_by_side")


def tiny_model_dir() -> Path:
    sys.path.insert(0, str(ROOT))
    from server.config import default_cache_dir
    from server.engine.tiny import ensure_tiny_model

    return Path(ensure_tiny_model(default_cache_dir())).resolve()


def order(round_index: int) -> tuple[str, str]:
    return SERVERS if round_index % 2 == 0 else (SERVERS[1], SERVERS[0])


def serve_bench_run(
    args: argparse.Namespace, server: str, label: str, model_args: list[str], extra: Sequence[str] = ()
) -> int:
    """One `serve_bench.py run` with this script's load and engine arguments (plus `extra`)."""
    cmd = [
        sys.executable, str(SERVE_BENCH), "run",
        "--server", server, "--label", label, "--out", str(args.out),
        "--points", args.points, "--warmup", args.warmup,
        "--input-len", str(args.input_len), "--output-len", str(args.output_len),
        "--port", str(args.port), *model_args,
        "--", *args.server_args, *extra,
    ]  # fmt: skip
    log.info("%s: %s", label, " ".join(cmd))
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


def add_run_arguments(parser: argparse.ArgumentParser, points: str, warmup: str, rounds: int = 2) -> None:
    """The arguments of a run of rounds: where, how many, the load, and the engine arguments."""
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--points", default=points, help="concurrency:prompts,...")
    parser.add_argument("--warmup", default=warmup)
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("server_args", nargs=argparse.REMAINDER)


def write_results(args: argparse.Namespace, name: str, record: dict[str, Any], table_text: str) -> None:
    """DIR/<name>.json (when the run finished, its arguments, then `record`) and DIR/table.md
    (`table_text`, also printed)."""
    full = {
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "rounds": args.rounds,
        "points": args.points,
        "input_len": args.input_len,
        "output_len": args.output_len,
        "server_args": args.server_args,
        **record,
    }
    (args.out / f"{name}.json").write_text(json.dumps(full, indent=2) + "\n")
    (args.out / "table.md").write_text(table_text)
    print(table_text)


def points_of(record: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The measured points (not the warm-up), by concurrency."""
    measured = [p for p in record.get("points", []) if not p["warmup"] and p.get("status") == "ok"]
    return {p["concurrency"]: p for p in measured}


def compare(out: Path, rounds: int) -> dict[str, Any]:
    """Per concurrency: each round's throughput and inter-token latency on both sides, the ratio
    ours/theirs, and the median ratio over the rounds."""
    by_concurrency: dict[int, list[dict[str, Any]]] = {}
    for r in range(rounds):
        runs = {s: json.loads((out / f"{s}-r{r}.json").read_text()) for s in SERVERS}
        theirs, ours = points_of(runs["vllm"]), points_of(runs["ours"])
        for c in sorted(set(theirs) & set(ours)):
            t, o = theirs[c], ours[c]
            ratio = o["output_throughput"] / t["output_throughput"] if t.get("output_throughput") else None
            by_concurrency.setdefault(c, []).append(
                {
                    "round": r,
                    "first": order(r)[0],
                    "theirs_tok_s": t.get("output_throughput"),
                    "ours_tok_s": o.get("output_throughput"),
                    "ratio": ratio,
                    "theirs_itl_p50_ms": t.get("itl_p50_ms"),
                    "ours_itl_p50_ms": o.get("itl_p50_ms"),
                    "failed": (t.get("failed") or 0) + (o.get("failed") or 0),
                }
            )
    summary = {}
    for c, rows in sorted(by_concurrency.items()):
        ratios = [row["ratio"] for row in rows if row["ratio"] is not None]
        summary[str(c)] = {"rounds": rows, "median_ratio": statistics.median(ratios) if ratios else None}
    return summary


def table(summary: dict[str, Any], header: str) -> str:
    lines = [
        header,
        "",
        "| concurrency | round (first) | vllm serve tok/s | ours tok/s | ours/theirs "
        "| ITL p50 theirs / ours ms |",
        "|---|---|---|---|---|---|",
    ]
    for c, entry in summary.items():
        for row in entry["rounds"]:
            lines.append(
                f"| {c} | {row['round']} ({row['first']}) | {row['theirs_tok_s']:.1f} "
                f"| {row['ours_tok_s']:.1f} "
                f"| {row['ratio']:.3f} | {row['theirs_itl_p50_ms']:.2f} / {row['ours_itl_p50_ms']:.2f} |"
            )
        median = entry["median_ratio"]
        lines.append(f"| {c} | **median** | | | **{median:.3f}** | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, points="1:16,8:64,32:128,128:256", warmup="8:16")
    parser.add_argument("--prepare-dummy", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.server_args = [a for a in args.server_args if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.prepare_dummy is not None:
        model_args = ["--prepare-dummy", str(args.prepare_dummy)]
    else:
        model_args = ["--model-dir", str(args.model_dir or tiny_model_dir())]
    failures = 0
    if not args.table_only:
        for r in range(args.rounds):
            for server in order(r):
                failures += serve_bench_run(args, server, f"{server}-r{r}", model_args) != 0
    summary = compare(args.out, args.rounds)
    header = (
        f"`vllm serve` and ours, {args.rounds} alternating rounds, random {args.input_len} in / "
        f"{args.output_len} out, engine args `{' '.join(args.server_args)}`"
    )
    record = {"model": model_args, "summary": summary, "failed_runs": failures}
    write_results(args, "side_by_side", record, table(summary, header))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
