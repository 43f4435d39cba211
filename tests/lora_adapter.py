"""LoRA adapters for the tests, made with PEFT the way QLoRA recipes make them (rank-r matrices on the
attention projections), and the same adapter merged into a copy of the base checkpoint with PEFT's
own `merge_and_unload`.

The merged copy keeps the base checkpoint's files and tensor names: only the four attention
projections of each layer are replaced, by PEFT's merged weights. So the engine reads both
checkpoints the same way, and the only difference between "base + adapter" and "merged" is where
W + (alpha / r) * B @ A is computed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

# What the QLoRA recipes for Mixtral (Chinese-Mixtral's among them) adapt.
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
# The LoRA tests' base model is the embedded tiny Mixtral with its output layer scaled by this.
# A random model's next-token distribution is nearly flat: over 32 greedy tokens of the tiny
# Mixtral the median gap between the top two log-probabilities is 0.045, so rounding, not the
# model, decides its greedy choice, and "the same greedy output" would compare arithmetic. Scaled,
# the top choices stand apart, while the layers below (and the adapter's effect on them) are the
# default model's.
OUTPUT_SCALE = 25.0


def make_lora_base(tiny_dir: Path, out_dir: Path) -> Path:
    """A copy of the tiny checkpoint at `tiny_dir` with lm_head scaled by OUTPUT_SCALE."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_dir, out_dir)
    for path in out_dir.glob("*.safetensors"):
        tensors = load_file(path)
        if "lm_head.weight" in tensors:
            head = tensors["lm_head.weight"]
            tensors["lm_head.weight"] = (head.float() * OUTPUT_SCALE).to(head.dtype)
            save_file(tensors, path, metadata={"format": "pt"})
    return out_dir


def make_adapter(base_dir: Path, out_dir: Path, *, rank: int = 8, seed: int = 0) -> Path:
    """A random adapter on `base_dir`'s attention projections, saved in PEFT's format to `out_dir`.

    PEFT starts B at zero (the adapter is then a no-op); `init_lora_weights=False` draws A and B at
    random, as a trained adapter would have them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=list(ATTENTION_PROJECTIONS),
        init_lora_weights=False,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model: Any = get_peft_model(model, config)
    peft_model.save_pretrained(out_dir)
    return out_dir


def merged_state(base_dir: Path, adapter_dir: Path) -> dict[str, Any]:
    """The model's weights with the adapter merged in by PEFT (`merge_and_unload`), in float32."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged: Any = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    return {name: tensor.detach() for name, tensor in merged.state_dict().items()}


def is_adapted(name: str) -> bool:
    return name.endswith(".weight") and name.split(".")[-2] in ATTENTION_PROJECTIONS


def write_merged_checkpoint(base_dir: Path, adapter_dir: Path, out_dir: Path, dtype: str) -> list[str]:
    """Copy `base_dir` to `out_dir` with each adapted projection replaced by its merged weight, cast
    to `dtype` ("float16", "bfloat16", ...). Returns the names of the tensors replaced."""
    import torch
    from safetensors.torch import load_file, save_file

    state = merged_state(base_dir, adapter_dir)
    shutil.copytree(base_dir, out_dir)
    replaced = []
    for path in sorted(out_dir.glob("*.safetensors")):
        tensors = load_file(path)
        for name in tensors:
            if is_adapted(name):
                tensors[name] = state[name].to(getattr(torch, dtype)).contiguous()
                replaced.append(name)
        save_file(tensors, path, metadata={"format": "pt"})
    return replaced
