"""`mixtral-load`: command line, workload set-up, sweep or SLO search, and the files it writes.

    mixtral-load --base-url http://127.0.0.1:8000 --concurrency 1,2,4 --num-prompts 16 \
        --input-len 32 --output-len 16 --ignore-eos --out load-out

OUT/summary.json (one summary per load point, plus the SLO result), OUT/records.jsonl (one line per
request), and OUT/throughput.png, latency.png, ttft_cdf.png when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clients.client import Client
from clients.errors import ClientError
from clients.load import plots, prompts, runner, slo, workers
from clients.load.progress import progress_bar
from clients.load.stats import Load, Record, summarize
from clients.protocol import DEFAULT_BASE_URL

log = logging.getLogger("mixtral-load")


def _loads(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mixtral-load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base-url", default=os.environ.get("MIXTRAL_BASE_URL", DEFAULT_BASE_URL))
    p.add_argument("--api-key", help="default: $MIXTRAL_API_KEY")
    p.add_argument("--model", help="default: the server's first model")
    p.add_argument("--endpoint", choices=("chat", "completions"), default="chat")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=_loads, help="closed loop: e.g. 1,4,16")
    load.add_argument("--rate", type=_loads, help="open loop, Poisson arrivals in req/s: e.g. 1,2,inf")
    p.add_argument("--num-prompts", type=int, default=64, help="requests per load point")
    p.add_argument("--input-len", type=int, default=512, help="synthetic prompt tokens")
    p.add_argument("--output-len", type=int, default=256, help="max_tokens of each request")
    p.add_argument("--tokenizer", help="for synthetic prompts; default: the server's model folder or name")
    p.add_argument("--dataset", type=Path, help="JSONL of conversations instead of synthetic prompts")
    p.add_argument("--ignore-eos", action="store_true", help="exact output lengths (a vLLM extension)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="for prompts and arrival times")
    p.add_argument("--warmup", type=int, default=0, help="unrecorded requests before the first point")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to connect and between chunks")
    p.add_argument("--slo", action="append", type=slo.Objective.parse, default=[], help="e.g. 'ttft.p99<1s'")
    p.add_argument("--slo-search", choices=("concurrency", "rate"), default="concurrency")
    p.add_argument("--slo-start", type=float, default=1.0)
    p.add_argument("--slo-max", type=float, default=256.0)
    p.add_argument("--slo-max-error-rate", type=float, default=0.0)
    p.add_argument("--out", type=Path, help="folder for summary.json, records.jsonl and the plots")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--workers", type=int, default=1, help="client processes to spread each point over (high loads)"
    )
    return p


def resolve_model(args: argparse.Namespace) -> tuple[str, str | None]:
    """The model name, and the server's model root (a local folder when the server runs here)."""
    with Client(args.base_url, args.api_key, model=args.model, max_retries=0, timeout=30) as client:
        models = client.models()
    chosen = next((m for m in models if m.id == args.model), models[0]) if models else None
    if chosen is None:
        raise SystemExit("the server lists no model; give --model")
    return args.model or chosen.id, chosen.raw.get("root")


def workload(
    args: argparse.Namespace, model: str, root: str | None
) -> Callable[[int], list[prompts.WorkItem]]:
    """The requests of point k: fresh synthetic prompts for each point, so that no point is helped by
    the prefix cache that an earlier one filled."""
    n = args.num_prompts
    if args.dataset is not None:
        return lambda k: prompts.from_jsonl(args.dataset, n * (k + 1), args.output_len)[n * k :]
    name = args.tokenizer or (root if root and Path(root).is_dir() else model)
    tokenizer = prompts.load_tokenizer(name)
    return lambda k: prompts.synthetic(tokenizer, n, args.input_len, args.output_len, args.seed + k)


class Sweep:
    """Runs points one after another and keeps everything measured."""

    def __init__(self, args: argparse.Namespace, target: runner.Target, items: Callable[[int], Any]) -> None:
        self.args, self.target, self.items = args, target, items
        self.summaries: list[dict[str, Any]] = []
        self.records: list[Record] = []

    def measure(self, load: Load) -> dict[str, Any]:
        work = self.items(len(self.summaries))
        bar = progress_bar(len(work), load.label(), not self.args.no_progress)
        failed = 0

        def done(record: Record) -> None:
            nonlocal failed
            failed += 0 if record.ok else 1
            bar.update(1)
            if failed:
                bar.set_postfix_str(f"{failed} failed")

        try:
            seed, count = self.args.seed, self.args.workers
            if count > 1:
                records, duration = workers.run_point(self.target, load, work, done, seed, count)
            else:
                records, duration = asyncio.run(runner.run_point(self.target, load, work, done, seed))
        finally:
            bar.close()
        summary = summarize(load, records, duration)
        self.summaries.append(summary)
        self.records.extend(records)
        print(_row(summary), flush=True)
        return summary


def _row(s: dict[str, Any]) -> str:
    def ms(key: str, stat: str) -> str:
        return f"{s[key][stat]:.1f}" if s[key] else "-"

    load = f"{s['load']['mode']}={s['load']['value']:g}"
    return (
        f"{load:>16}  {s['output_tokens_per_s']:>9.1f} tok/s  {s['requests_per_s']:>7.2f} req/s  "
        f"TTFT p50/p99 {ms('ttft_ms', 'p50')}/{ms('ttft_ms', 'p99')} ms  "
        f"ITL p50/p99 {ms('itl_ms', 'p50')}/{ms('itl_ms', 'p99')} ms  failed {s['failed']}"
    )


def run_slo(args: argparse.Namespace, sweep: Sweep) -> dict[str, Any]:
    def ok(value: float) -> bool:
        met = slo.meets(sweep.measure(Load(args.slo_search, value)), args.slo, args.slo_max_error_rate)
        log.info("%s=%g: %s", args.slo_search, value, "meets the SLO" if met else "misses the SLO")
        return met

    integer = args.slo_search == "concurrency"
    best = slo.search(ok, args.slo_start, args.slo_max, integer)
    return {
        "objectives": [str(o) for o in args.slo],
        "max_error_rate": args.slo_max_error_rate,
        "search": args.slo_search,
        "best": best,
        "measured": {
            f"{s['load']['value']:g}": slo.meets(s, args.slo, args.slo_max_error_rate)
            for s in sweep.summaries
        },
    }


def write_outputs(args: argparse.Namespace, result: dict[str, Any], sweep: Sweep) -> None:
    if args.out is None:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    with (args.out / "records.jsonl").open("w") as f:
        for record in sweep.records:
            f.write(json.dumps(record.to_json()) + "\n")
    written = (
        [] if args.no_plots else plots.write_plots(sweep.summaries, sweep.records, args.out, result["config"])
    )
    print(f"wrote {args.out}/summary.json, records.jsonl" + "".join(f", {p.name}" for p in written))


def _config(args: argparse.Namespace, model: str) -> dict[str, Any]:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "slo"}
    config["slo"] = [str(o) for o in args.slo]
    config["model"] = model
    config["started_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        model, root = resolve_model(args)
    except ClientError as exc:
        print(f"error: cannot reach {args.base_url}: {exc}", file=sys.stderr)
        return 1
    params: dict[str, Any] = {"temperature": args.temperature}
    if args.ignore_eos:
        params["ignore_eos"] = True
    target = runner.Target(
        args.base_url, args.api_key, model, args.endpoint, tuple(params.items()), args.timeout
    )
    items = workload(args, model, root)
    if args.warmup:
        first = (args.concurrency or [1])[0]
        asyncio.run(runner.warm_up(target, items(10_000)[: args.warmup], int(first)))
    sweep = Sweep(args, target, items)
    result: dict[str, Any] = {"config": _config(args, model), "points": sweep.summaries, "slo": None}
    if args.slo:
        result["slo"] = run_slo(args, sweep)
        print(f"highest {args.slo_search} meeting the SLO: {result['slo']['best']}")
    else:
        mode, values = ("rate", args.rate) if args.rate else ("concurrency", args.concurrency or [1.0])
        for value in values:
            sweep.measure(Load(mode, value))
    write_outputs(args, result, sweep)
    return 0
