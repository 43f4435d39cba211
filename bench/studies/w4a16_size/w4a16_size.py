"""Weight bytes of a Mixtral/Mistral config in bf16 and as `mixtral-serve quantize --scheme w4a16`
writes it: computed from the config's shapes, with the quantizer's own rule for which tensors
become int4 (server/engine/quantize.py), no weights needed.

    python bench/studies/w4a16_size/w4a16_size.py bench/models/mixtral-8x7b/config.json

A quantized Linear weight [out, in] is out*in/2 bytes of packed int4, out*in/128 bf16 scales and a
two-number shape; every other tensor stays bf16. (A computed figure: what vLLM then allocates on a
GPU is measured by `gpu_single.sh quant-memory` with SHAPES including w4a16.)

Also writes bench/models/mixtral-8x7b-w4a16/config.json (--write-config): the real config plus
the quantization_config the quantizer writes, for load_format=dummy runs as the AWQ/GPTQ shapes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from server.engine.quantize import GROUP_SIZE, QUANTIZED, quantization_config  # noqa: E402

GIB = 1 << 30
BF16 = 2


def tensors(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor of the checkpoint by name, in the Hugging Face layout of Mixtral and Mistral."""
    hidden, ffn, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head_dim
    experts = config.get("num_local_experts", 0)
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
    }
    if not config.get("tie_word_embeddings"):
        shapes["lm_head.weight"] = (vocab, hidden)
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        shapes |= {p + "input_layernorm.weight": (hidden,), p + "post_attention_layernorm.weight": (hidden,)}
        shapes |= {
            p + "self_attn.q_proj.weight": (config["num_attention_heads"] * head_dim, hidden),
            p + "self_attn.k_proj.weight": (kv, hidden),
            p + "self_attn.v_proj.weight": (kv, hidden),
            p + "self_attn.o_proj.weight": (hidden, config["num_attention_heads"] * head_dim),
        }
        if experts:
            shapes[p + "block_sparse_moe.gate.weight"] = (experts, hidden)
            for e in range(experts):
                q = f"{p}block_sparse_moe.experts.{e}."
                shapes |= {
                    q + "w1.weight": (ffn, hidden),
                    q + "w2.weight": (hidden, ffn),
                    q + "w3.weight": (ffn, hidden),
                }
        else:
            shapes |= {p + "mlp.gate_proj.weight": (ffn, hidden), p + "mlp.up_proj.weight": (ffn, hidden)}
            shapes[p + "mlp.down_proj.weight"] = (hidden, ffn)
    return shapes


def size_bytes(config: dict[str, Any]) -> tuple[int, int]:
    """(bf16 bytes, W4A16 bytes) of the checkpoint's tensors."""
    return _sizes(config)[:2]


def size(config: dict[str, Any]) -> dict[str, float]:
    bf16, w4a16, kept = _sizes(config)
    return {
        "bf16_gib": round(bf16 / GIB, 2),
        "w4a16_gib": round(w4a16 / GIB, 2),
        "kept_bf16_gib": round(kept / GIB, 2),
    }


def _sizes(config: dict[str, Any]) -> tuple[int, int, int]:
    bf16 = w4a16 = kept = 0
    for name, shape in tensors(config).items():
        count = 1
        for n in shape:
            count *= n
        bf16 += count * BF16
        if len(shape) == 2 and QUANTIZED.search(name):
            rows, cols = shape
            w4a16 += rows * cols // 2 + rows * (cols // GROUP_SIZE) * BF16 + 2 * 8
        else:
            w4a16 += count * BF16
            kept += count * BF16
    return bf16, w4a16, kept


def main(argv: list[str]) -> None:
    config = json.loads(Path(argv[0]).read_text())
    print(json.dumps(size(config)))
    if "--write-config" in argv:
        out = ROOT / "bench" / "models" / "mixtral-8x7b-w4a16" / "config.json"
        out.write_text(json.dumps({**config, "quantization_config": quantization_config()}, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
