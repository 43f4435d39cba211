"""Rebuild raw/vllm-bf16.json from the per-point result files of `vllm bench serve`.

The first `vllm serve` run's summary JSON, server log and c=64 files did not come back from the GPU
machine (a limit on returned files); its per-point result files did. c=64 comes from a second start
of the same server, same arguments, same machine, minutes later (raw/vllm-bf16-c64.json)."""

import json
from pathlib import Path

RAW = Path(__file__).parent / "raw"
FIELDS = {
    "output_throughput": "output_throughput",
    "ttft_p50_ms": "median_ttft_ms",
    "ttft_p99_ms": "p99_ttft_ms",
    "itl_p50_ms": "median_itl_ms",
    "itl_p99_ms": "p99_itl_ms",
    "tpot_p50_ms": "median_tpot_ms",
    "completed": "completed",
    "duration_s": "duration",
}


def point(name: str, concurrency: int, prompts: int, warmup: bool) -> dict[str, object]:
    result = json.loads((RAW / name).read_text())
    out: dict[str, object] = {"concurrency": concurrency, "num_prompts": prompts, "warmup": warmup}
    out.update({key: result[src] for key, src in FIELDS.items()})
    out.update(status="ok", failed=prompts - int(result["completed"]))
    return out


c64 = json.loads((RAW / "vllm-bf16-c64.json").read_text())
record = {
    "label": "vllm-bf16",
    "server": "vllm",
    "command": [*c64["command"][:4], "<model dir>", *c64["command"][5:]],
    "ready_s": 135.4,  # from the run's driver output; the second start (warm caches) took 110.0 s
    "jit_lines": None,  # its log did not come back; the second start logged 1 (vLLM logs the first only)
    "host": c64["host"],
    "rebuilt_from": "per-point result files; c=64 from the second start (vllm-bf16-c64)",
    "points": [
        point("vllm-bf16.c256.n300.warmup.result.json", 256, 300, True),
        point("vllm-bf16.c256.n1500.result.json", 256, 1500, False),
        next(p for p in c64["points"] if not p["warmup"]),
        point("vllm-bf16.c16.n320.result.json", 16, 320, False),
        point("vllm-bf16.c1.n24.result.json", 1, 24, False),
    ],
}
(RAW / "vllm-bf16.json").write_text(json.dumps(record, indent=2) + "\n")
