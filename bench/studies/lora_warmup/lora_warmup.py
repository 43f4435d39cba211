"""Start-up cost of the LoRA warm-up, and kernel compiles left to serving, on a real model shape.

    python bench/studies/lora_warmup/lora_warmup.py --config bench/models/mixtral-8x7b --out OUT \
        [--lengths 7,100] [-- ARGS]

Writes a random rank-8 adapter on the attention projections in PEFT's format for the config's
shapes (what tests/lora_adapter.py makes with PEFT on the tiny model; PEFT cannot build a model of
this size here), starts our server on the config with dummy weights and that adapter, with
--log-kernel-compiles, then sends prompts of each length below through the adapter and the base
model, one at a time. OUT/lora-warmup.json gets the time to ready, the warm-up's own log lines and
every "... during inference" compile vLLM logged after start-up. The server's start, stop and compile
count are serve_bench.py's. Needs torch, safetensors and httpx (the GPU image has them).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench" / "tools"))  # serve_bench: the server's start, stop and compiles

from serve_bench import JIT_MARKER, jit_lines, start_server, stop_server, wait_ready  # noqa: E402

LENGTHS = (7, 100, 333, 600, 611, 700, 1100, 1203, 1500, 1900, 2000)
RANK = 8


def write_adapter(config: dict[str, Any], out: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    hidden, heads, kv_heads = (
        config["hidden_size"],
        config["num_attention_heads"],
        config["num_key_value_heads"],
    )
    head_dim = config.get("head_dim") or hidden // heads
    shapes = {"q_proj": (hidden, heads * head_dim), "k_proj": (hidden, kv_heads * head_dim),
              "v_proj": (hidden, kv_heads * head_dim), "o_proj": (heads * head_dim, hidden)}  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for name, (fan_in, fan_out) in shapes.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{name}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(RANK, fan_in, generator=gen) / fan_in**0.5
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(fan_out, RANK, generator=gen) / RANK**0.5
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}, out / "adapter_model.safetensors"
    )
    adapter_config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": 2 * RANK,
        "lora_dropout": 0.0, "target_modules": list(shapes), "bias": "none", "fan_in_fan_out": False,
        "modules_to_save": None, "use_rslora": False, "use_dora": False, "base_model_name_or_path": None,
    }  # fmt: skip
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    return out


def post(url: str, body: dict[str, Any]) -> None:
    resp = httpx.post(url, json=body, timeout=300)
    resp.raise_for_status()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True, help="a folder with the model's config.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ready-timeout", type=float, default=420)
    parser.add_argument(
        "--lengths", default=",".join(map(str, LENGTHS)), help="prompt lengths, comma-separated"
    )
    parser.add_argument("server_args", nargs="*")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from server.engine.tiny import prepare_dummy_checkpoint

    args.out.mkdir(parents=True, exist_ok=True)
    config = json.loads((args.config / "config.json").read_text())
    model = prepare_dummy_checkpoint(args.config / "config.json", args.out / "model")
    adapter = write_adapter(config, args.out / "adapter")
    command = [
        sys.executable, "-m", "server", "--model", str(model), "--load-format", "dummy",
        "--served-model-name", "base", "--lora-modules", f"ad={adapter}", "--max-lora-rank", str(RANK),
        "--log-kernel-compiles", "--port", str(args.port), *args.server_args,
    ]  # fmt: skip
    log_path = args.out / "server.log"
    lengths = [int(n) for n in args.lengths.split(",")]
    result: dict[str, Any] = {"command": command, "lengths": lengths}
    url = f"http://127.0.0.1:{args.port}"
    server = start_server(command, log_path)
    try:
        result["ready_s"] = round(wait_ready(url, server, args.ready_timeout), 1)
        timings = []
        for length in lengths:
            for model_name in ("ad", "base"):
                ids = [100 + (i * 7919 + length) % 20000 for i in range(length)]
                body = {
                    "model": model_name,
                    "prompt": ids,
                    "max_tokens": 4,
                    "temperature": 0,
                    "ignore_eos": True,
                }
                t0 = time.perf_counter()
                post(f"{url}/v1/completions", body)
                timings.append(
                    {"model": model_name, "prompt_tokens": length, "s": round(time.perf_counter() - t0, 4)}
                )
        result["requests"] = timings
    except (RuntimeError, httpx.HTTPError) as exc:  # the JSON records what stopped the run
        result["error"] = repr(exc)
    finally:
        stop_server(server)
    result["warm_up_lines"] = re.findall(r'"message": "(warm-up[^"]*)"', log_path.read_text(errors="replace"))
    result["compiles_while_serving"] = [line[line.index(JIT_MARKER) :][:300] for line in jit_lines(log_path)]
    (args.out / "lora-warmup.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "command"}, indent=1)[:3000])  # noqa: T201
    return 0 if "error" not in result and not result["compiles_while_serving"] else 1


if __name__ == "__main__":
    sys.exit(main())
