"""Throughput per quantization method, from the runs of `gpu_single.sh quant-throughput`.

    python bench/studies/quant_throughput/quant_throughput.py OUT > OUT/quant-throughput.json

and the same table as markdown in OUT/quant-throughput.md. For each OUT/ours-SHAPE-tp1.json that
serve_bench.py wrote: the weights and KV cache of its server log (quant_memory.py's reading, from the
study beside this one), then one row per measured point, with the bf16 run's output throughput at the
same point as the reference when OUT holds a bf16 run. Only the standard library: it runs on the GPU
host as well as here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# quant_memory's reading of a server log, from the study beside this one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quant_memory"))

from quant_memory import summarize  # noqa: E402

REFERENCE = "bf16"
ORDER = ("bf16", "fp8", "awq", "gptq", "w4a16")  # rows in this order; other shapes after them
HEADER = (
    "| checkpoint | weights GiB | KV cache GiB | concurrency (prompts) | out tok/s | / bf16 "
    "| TTFT p50 / p99 ms | ITL p50 / p99 ms | TPOT p50 ms | failed |\n" + "|---" * 10 + "|"
)


def shape_of(label: str) -> str:
    """ours-awq-tp1 -> awq"""
    return label.removeprefix("ours-").rsplit("-tp", 1)[0]


def measured(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in record["points"] if not p.get("warmup") and p.get("status") == "ok"]


def rows(out: Path) -> list[dict[str, Any]]:
    found = {shape_of(p.stem): p for p in out.glob("ours-*-tp1.json")}
    order = sorted(found, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))
    records = {shape: found[shape] for shape in order}
    reference: dict[tuple[int, int], float] = {}
    if REFERENCE in records:
        data = json.loads(records[REFERENCE].read_text())
        reference = {(p["concurrency"], p["num_prompts"]): p["output_throughput"] for p in measured(data)}
    result = []
    for shape, path in records.items():
        record = json.loads(path.read_text())
        memory = summarize(path)
        for point in measured(record):
            ref = reference.get((point["concurrency"], point["num_prompts"]))
            result.append(
                {
                    "shape": shape,
                    "weights_gib": memory["weights_gib_per_gpu"],
                    "kv_cache_gib": memory["kv_cache_gib_per_gpu"],
                    "ready_s": record.get("ready_s"),
                    "compiles_while_serving": record.get("jit_lines"),
                    **{k: point.get(k) for k in ("concurrency", "num_prompts", "output_throughput")},
                    "vs_bf16": round(point["output_throughput"] / ref, 3) if ref else None,
                    **{k: point.get(k) for k in ("ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms")},
                    **{k: point.get(k) for k in ("tpot_p50_ms", "completed", "failed")},
                }
            )
    return result


def markdown(table: list[dict[str, Any]]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    lines = [HEADER]
    for r in table:
        ratio = "-" if r["vs_bf16"] is None else f"{r['vs_bf16']:.2f}"
        lines.append(
            f"| {r['shape']} | {r['weights_gib']} | {r['kv_cache_gib']} "
            f"| {r['concurrency']} ({r['num_prompts']}) | {r['output_throughput']:,.0f} | {ratio} "
            f"| {ms(r['ttft_p50_ms'])} / {ms(r['ttft_p99_ms'])} "
            f"| {ms(r['itl_p50_ms'])} / {ms(r['itl_p99_ms'])} | {ms(r['tpot_p50_ms'])} | {r['failed']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    table = rows(out)
    (out / "quant-throughput.md").write_text(markdown(table))
    print(json.dumps(table, indent=2))  # noqa: T201
    return 0 if table and all(r["failed"] == 0 for r in table) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
