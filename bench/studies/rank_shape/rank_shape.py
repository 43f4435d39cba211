"""The shapes one GPU holds of a Mixtral model under tensor parallelism, as a config one GPU can load.

    python bench/studies/rank_shape/rank_shape.py MODEL_DIR TP OUT_DIR

Writes OUT_DIR/config.json: MODEL_DIR's config with what vLLM splits across TP ranks divided by TP
(attention heads, key/value heads, the experts' intermediate size), head_dim kept explicit and the
hidden size whole, as one rank holds them. Loaded with --load-format dummy on one GPU, it gives the
weights' memory and KV-cache room of one GPU of a TP run when no machine with TP GPUs is at hand.

What it does not split: the embedding and the output layer. vLLM splits both by vocabulary under
TP, but a smaller vocabulary would let the tokenizer's ids overrun the embedding, so they stay whole:
the figure is high by (TP - 1) / TP of both matrices (bf16 Mixtral-8x7B at TP=2: 2 x 32000 x 4096
x 2 bytes / 2 = 0.244 GiB; quantized checkpoints keep both in 16 bits). Nor does it allocate what
only a multi-GPU run has (NCCL and custom all-reduce buffers). Only the standard library: it runs on
the GPU hosts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SPLIT = ("num_attention_heads", "num_key_value_heads", "intermediate_size")


def rank_config(config: dict[str, Any], tp: int) -> dict[str, Any]:
    out = dict(config)
    out["head_dim"] = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    for key in SPLIT:
        if config[key] % tp:
            raise ValueError(f"{key}={config[key]} does not split over {tp} GPUs")
        out[key] = config[key] // tp
    return out


def main(argv: list[str]) -> int:
    model_dir, tp, out_dir = Path(argv[1]), int(argv[2]), Path(argv[3])
    config = json.loads((model_dir / "config.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(rank_config(config, tp), indent=2) + "\n")
    print(out_dir)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
