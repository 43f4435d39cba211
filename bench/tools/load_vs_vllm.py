"""Check mixtral-load against vLLM's own load generator: the same server, the same load, both numbers.

    python bench/tools/load_vs_vllm.py --url http://127.0.0.1:8000 --out OUT/load_vs_vllm.json \
        [--input-len 512 --output-len 256 --concurrency 64 --num-prompts 640 --rounds 2]

Runs `vllm bench serve --backend openai-chat --dataset-name random --ignore-eos --max-concurrency C
--num-prompts N` and `mixtral-load --concurrency C --num-prompts N --ignore-eos` (synthetic prompts of
the same token length, temperature 0) against a server that is already running, alternating them
`--rounds` times, and writes both sets of figures and their ratios (ours / vLLM's) as JSON. The load
tester is started as `python -m clients.load` from this checkout, so it needs only httpx and
transformers, which is what a GPU host with vLLM has.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from serve_bench import vllm_cli

ROOT = Path(__file__).resolve().parents[2]
FIELDS = (
    "output_throughput",
    "request_throughput",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "itl_p50_ms",
    "tpot_p50_ms",
)
TOLERANCE = 0.05  # the two must agree on output throughput within 5%


def model_info(url: str) -> tuple[str, str]:
    """Served name, and the model folder (the tokenizer both clients use)."""
    model = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]
    return str(model["id"]), str(model.get("root") or model["id"])


def run_vllm_bench(
    args: argparse.Namespace, name: str, tokenizer: str, work: Path, tag: str, seed: int
) -> dict[str, Any]:
    cmd = [
        *vllm_cli(), "bench", "serve",
        "--backend", "openai-chat", "--endpoint", "/v1/chat/completions", "--base-url", args.url,
        "--model", tokenizer, "--tokenizer", tokenizer, "--served-model-name", name,
        "--dataset-name", "random",
        "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len),
        "--num-prompts", str(args.num_prompts), "--max-concurrency", str(args.concurrency),
        "--request-rate", "inf", "--ignore-eos", "--temperature", "0", "--seed", str(seed),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99", "--disable-tqdm",
        "--save-result", "--result-dir", str(work), "--result-filename", f"{tag}.json",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=sys.stderr)
    r = json.loads((work / f"{tag}.json").read_text())
    return {
        "output_throughput": r["output_throughput"],
        "request_throughput": r["request_throughput"],
        "ttft_p50_ms": r["median_ttft_ms"],
        "ttft_p99_ms": r["p99_ttft_ms"],
        "itl_p50_ms": r["median_itl_ms"],
        "tpot_p50_ms": r["median_tpot_ms"],
        "completed": r["completed"],
        "failed": r.get("failed", 0),
        "duration_s": r["duration"],
        "command": cmd,
    }


def run_mixtral_load(
    args: argparse.Namespace, tokenizer: str, work: Path, tag: str, seed: int
) -> dict[str, Any]:
    out = work / tag
    cmd = [
        sys.executable, "-m", "clients.load", "--base-url", args.url,
        "--concurrency", str(args.concurrency), "--num-prompts", str(args.num_prompts),
        "--input-len", str(args.input_len), "--output-len", str(args.output_len), "--tokenizer", tokenizer,
        "--ignore-eos", "--temperature", "0", "--seed", str(seed),
        "--out", str(out), "--no-plots", "--no-progress", "--workers", str(args.workers),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=sys.stderr)
    s = json.loads((out / "summary.json").read_text())["points"][0]
    return {
        "output_throughput": s["output_tokens_per_s"],
        "request_throughput": s["requests_per_s"],
        "ttft_p50_ms": s["ttft_ms"]["p50"],
        "ttft_p99_ms": s["ttft_ms"]["p99"],
        "itl_p50_ms": s["itl_ms"]["p50"],
        "tpot_p50_ms": s["tpot_ms"]["p50"],
        "completed": s["completed"],
        "failed": s["failed"],
        "duration_s": s["duration_s"],
        "command": cmd,
    }


def mean_of(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {f: round(statistics.fmean(r[f] for r in runs), 3) for f in FIELDS}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="a running OpenAI-compatible server")
    p.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    p.add_argument("--input-len", type=int, default=512)
    p.add_argument("--output-len", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--num-prompts", type=int, default=640)
    p.add_argument("--rounds", type=int, default=1, help="alternate the two clients this many times")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="mixtral-load client processes (high loads)")
    args = p.parse_args()
    args.url = args.url.rstrip("/")
    name, tokenizer = model_info(args.url)
    work = Path(tempfile.mkdtemp(prefix="load-vs-vllm-"))
    theirs, ours = [], []
    for i in range(args.rounds):
        # A new seed each round: the same prompts again would hit the server's prefix cache.
        seed = args.seed + i
        theirs.append(run_vllm_bench(args, name, tokenizer, work, f"vllm{i}", seed))
        ours.append(run_mixtral_load(args, tokenizer, work, f"ours{i}", seed))
    a, b = mean_of(theirs), mean_of(ours)
    ratio = {f: round(b[f] / a[f], 4) if a[f] else None for f in FIELDS}
    result = {
        "url": args.url,
        "model": name,
        "load": {k: getattr(args, k) for k in ("input_len", "output_len", "concurrency", "num_prompts")},
        "rounds": args.rounds,
        "vllm_bench_serve": a,
        "mixtral_load": b,
        "ratio_ours_over_vllm": ratio,
        "output_throughput_within_5_percent": abs((ratio["output_throughput"] or 0) - 1) <= TOLERANCE,
        "runs": {"vllm_bench_serve": theirs, "mixtral_load": ours},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for f in FIELDS:
        print(f"{f:>20}  vllm bench {a[f]:>10.2f}  mixtral-load {b[f]:>10.2f}  ratio {ratio[f]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
