"""GPU proof: serve Mixtral-8x7B (real config, dummy weights) with tensor parallelism through our
HTTP layer, stream chats over SSE, and record what the engine used.

    python bench/studies/gpu_proof/gpu_proof.py --out DIR [--tensor-parallel-size 2]

Writes DIR/proof.json, DIR/server.log and DIR/nvidia-smi.txt. Needs vLLM and two GPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench" / "tools"))  # serve_bench, a tool this study runs the server with
sys.path.insert(0, str(ROOT))

from serve_bench import start_server, stop_server, wait_ready  # noqa: E402

from server.engine.tiny import prepare_dummy_checkpoint  # noqa: E402

LOG_PATTERNS = (
    r"MoE|moe|fused|Experts|world_size|tensor_parallel|rank|Worker|custom all.?reduce"
    r"|attention backend|CUDA graph|KV cache|Loading weights|Memory"
)


def _sse(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ") and line != "data: [DONE]"]


def stream_chat(url: str) -> dict[str, object]:
    """One streamed chat, timed on the client (plain httpx: the SSE wire format OpenAI clients read)."""
    body = {
        "model": "mixtral-8x7b",
        "messages": [{"role": "user", "content": "Explain mixture-of-experts models in one paragraph."}],
        "max_tokens": 256,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = None
    chunks = 0
    text: list[str] = []
    usage: dict[str, int] | None = None
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as resp:
        for line in resp.iter_lines():
            for event in _sse([line]):
                if event.get("usage"):
                    usage = event["usage"]  # type: ignore[assignment]
                choices = event.get("choices") or []
                content = choices[0]["delta"].get("content") if choices else None  # type: ignore[index]
                if content:
                    first = first or time.perf_counter()
                    chunks += 1
                    text.append(content)
    end = time.perf_counter()
    assert first is not None and usage is not None
    n = usage["completion_tokens"]
    return {
        "ttft_s": round(first - start, 4),
        "content_chunks": chunks,
        "usage": usage,
        "decode_tok_per_s": round((n - 1) / (end - first), 1),
        "mean_itl_ms": round(1000 * (end - first) / max(1, n - 1), 2),
        "text_head": "".join(text)[:200],
    }


async def concurrent_streams(url: str, n: int, max_tokens: int) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def one(i: int) -> int:
            body = {
                "model": "mixtral-8x7b",
                "messages": [{"role": "user", "content": f"Request {i}: write about GPUs."}],
                "max_tokens": max_tokens,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            tokens = 0
            async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                async for line in resp.aiter_lines():
                    for event in _sse([line]):
                        if event.get("usage"):
                            tokens = event["usage"]["completion_tokens"]  # type: ignore[index]
            return tokens

        start = time.perf_counter()
        counts = await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - start
    return {
        "streams": n,
        "completed": sum(c == max_tokens for c in counts),
        "output_tok_per_s": round(sum(counts) / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tensor-parallel-size", type=int, default=2)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--config", type=Path, default=ROOT / "bench/models/mixtral-8x7b/config.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = prepare_dummy_checkpoint(args.config, Path("/tmp/mixtral-8x7b-dummy"))
    cmd = [
        sys.executable, "-m", "server", "--model", str(model_dir), "--served-model-name", "mixtral-8x7b",
        "--load-format", "dummy", "--tensor-parallel-size", str(args.tensor_parallel_size),
        "--max-model-len", "4096", "--port", str(args.port),
    ]  # fmt: skip
    log_path = args.out / "server.log"
    url = f"http://127.0.0.1:{args.port}"
    result: dict[str, object] = {"command": " ".join(["mixtral-serve", *cmd[3:]])}
    proc = start_server(cmd, log_path)
    try:
        result["ready_s"] = round(wait_ready(url, proc, timeout=480), 1)
        result["health"] = httpx.get(f"{url}/health").status_code
        result["version"] = httpx.get(f"{url}/version").json()
        result["models"] = httpx.get(f"{url}/v1/models").json()
        result["stream_warmup"] = stream_chat(url)
        result["stream"] = stream_chat(url)
        result["concurrent_64x128"] = asyncio.run(concurrent_streams(url, 64, 128))
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.used,memory.total", "--format=csv"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        (args.out / "nvidia-smi.txt").write_text(smi)
        result["nvidia_smi"] = smi.strip().splitlines()
        metrics = httpx.get(f"{url}/metrics").text
        result["metrics_sample"] = [
            line for line in metrics.splitlines() if line.startswith("mixtral_") and "_created" not in line
        ][:12]
    finally:
        result["exit_code"] = stop_server(proc)
        log_text = log_path.read_text(errors="replace")
        result["log_lines"] = [line[:300] for line in log_text.splitlines() if re.search(LOG_PATTERNS, line)][
            :60
        ]
        (args.out / "proof.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
