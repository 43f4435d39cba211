"""Weights' memory per quantization method, from the server logs of `gpu_single.sh quant-memory`.

    python bench/studies/quant_memory/quant_memory.py OUT > OUT/quant-memory.json

For each OUT/ours-METHOD-tpN.json that serve_bench.py wrote: the method vLLM ran (its engine config
line, `quantization=...`), "Model loading took X GiB" and the KV cache it then had room for, time to
ready, and whether the server answered the chat request at the end of its start (serve_bench's
preflight). Only the standard library: it runs on the GPU host as well as here.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

LOADING = re.compile(r"Model loading took ([\d.]+) GiB")
KV_CACHE = re.compile(r"Available KV cache memory: ([\d.]+) GiB")
METHOD = re.compile(r"quantization=([\w-]+)")


def first(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1) if found else None


def summarize(record_path: Path) -> dict[str, Any]:
    record = json.loads(record_path.read_text())
    log_path = record_path.with_name(f"{record['label']}.server.log")
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    loading, kv = first(LOADING, text), first(KV_CACHE, text)
    return {
        "label": record["label"],
        "vllm_quantization": first(METHOD, text),
        "weights_gib_per_gpu": float(loading) if loading else None,
        "kv_cache_gib_per_gpu": float(kv) if kv else None,
        "ready_s": record.get("ready_s"),
        "served_a_chat_request": record.get("ready_s") is not None and "error" not in record,
        "error": record.get("error"),
        "command": record["command"],
    }


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    rows = [summarize(p) for p in sorted(out.glob("ours-*-tp*.json"))]
    print(json.dumps(rows, indent=2))  # noqa: T201
    return 0 if rows and all(r["served_a_chat_request"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
