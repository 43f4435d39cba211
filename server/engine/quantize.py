"""`mixtral-serve quantize`: a bf16 Mistral/Mixtral checkpoint rewritten as 4-bit weights (W4A16) in the
compressed-tensors format, which vLLM loads with no flag (Marlin W4A16 kernels on GPUs, its int4 MoE
kernels on CPUs with AMX).

Round-to-nearest, symmetric int4, one bf16 scale per group of 128 input columns: no calibration data,
so nothing runs the model. Shards are read tensor by tensor and written shard by shard, so memory is
about one output shard plus one tensor in float32, never the whole model (Mixtral-8x7B is 93 GB in
bf16), and no GPU is needed.

The scheme, the scales, the rounding and the int32 packing are compressed-tensors' own (the library
vLLM reads the format with, and llm-compressor writes it through), so the files are what vLLM expects
by construction. llm-compressor itself cannot be installed beside the engine: its releases pin other
compressed-tensors and transformers versions than vLLM's (README, 4-bit from bf16).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from compressed_tensors.compressors import pack_to_int32, unpack_from_int32
from compressed_tensors.quantization import (
    QuantizationArgs,
    QuantizationConfig,
    QuantizationScheme,
    QuantizationStatus,
    QuantizationStrategy,
    QuantizationType,
)
from compressed_tensors.quantization.lifecycle.forward import dequantize, quantize
from compressed_tensors.quantization.utils import calculate_qparams
from safetensors import safe_open
from safetensors.torch import save_file

logger = logging.getLogger(__name__)

SCHEMES = ("w4a16",)
GROUP_SIZE = 128
BITS = 4
CHUNK_ROWS = 1024
FORMAT = "pack-quantized"

# The Linear layers whose weights become int4: attention projections, Mixtral's experts (w1, w3 up,
# w2 down) and a dense model's MLP. Everything else (the router `block_sparse_moe.gate`, embeddings,
# lm_head, norms) stays in bf16: the router is small and decides which experts run, and lm_head and
# the embedding are where 4-bit rounding costs the most accuracy for the least memory.
QUANTIZED = re.compile(
    r"\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)"
    r"|block_sparse_moe\.experts\.\d+\.(w1|w2|w3)"
    r"|mlp\.(gate_proj|up_proj|down_proj))\.weight$"
)
# Linear layers left in bf16, in the config's `ignore` list as llm-compressor writes it: vLLM
# matches a layer name against these, "re:" entries as regular expressions.
IGNORE = ["lm_head", "re:.*block_sparse_moe\\.gate$"]
TARGETS = ["Linear"]


def weight_args() -> QuantizationArgs:
    """The W4A16 weights of compressed-tensors' preset of that name, spelt out: int4, symmetric,
    group 128, static."""
    return QuantizationArgs(
        num_bits=BITS,
        type=QuantizationType.INT,
        strategy=QuantizationStrategy.GROUP,
        group_size=GROUP_SIZE,
        symmetric=True,
        dynamic=False,
    )


def quantization_config() -> dict[str, Any]:
    """config.json's `quantization_config`: what vLLM reads to choose the compressed-tensors method
    and, per layer, the W4A16 scheme."""
    scheme = QuantizationScheme(targets=TARGETS, weights=weight_args())
    config = QuantizationConfig(
        config_groups={"group_0": scheme},
        format=FORMAT,
        quantization_status=QuantizationStatus.COMPRESSED,
        ignore=list(IGNORE),
    )
    return dict(config.model_dump(exclude_none=False))


def is_quantized(name: str, tensor: torch.Tensor) -> bool:
    return tensor.ndim == 2 and QUANTIZED.search(name) is not None


def quantize_weight(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """One Linear weight [out, in] as compressed-tensors' pack-quantized triple: `weight_packed`
    (int32, eight 4-bit values each), `weight_scale` ([out, in/128], the weight's dtype) and
    `weight_shape`. Rows are quantized CHUNK_ROWS at a time (groups never span rows), so the float32
    temporaries stay small beside an expert's 14336 x 4096 weight."""
    rows, cols = weight.shape
    if cols % GROUP_SIZE:
        raise ValueError(f"input width {cols} is not a multiple of the group size {GROUP_SIZE}")
    parts = [_quantize_rows(weight[start : start + CHUNK_ROWS]) for start in range(0, rows, CHUNK_ROWS)]
    return {
        "weight_packed": torch.cat([packed for packed, _ in parts]),
        "weight_scale": torch.cat([scale for _, scale in parts]).contiguous(),
        "weight_shape": torch.tensor([rows, cols], dtype=torch.int64),
    }


def _quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = weight.shape
    args = weight_args()
    groups = weight.float().reshape(rows, cols // GROUP_SIZE, GROUP_SIZE)
    scale, zero_point = calculate_qparams(groups.amin(dim=-1), groups.amax(dim=-1), args)
    scale = round_up(scale, weight.dtype)
    values = quantize(
        x=weight.float(), scale=scale.float(), zero_point=zero_point, args=args, dtype=torch.int8
    )
    return pack_to_int32(values, BITS), scale


def dequantize_weight(packed: dict[str, torch.Tensor]) -> torch.Tensor:
    """The float32 weight that a pack-quantized triple stands for: the round trip's other half."""
    shape = torch.Size(packed["weight_shape"].tolist())
    values = unpack_from_int32(packed["weight_packed"], BITS, shape)
    weight: torch.Tensor = dequantize(
        x_q=values, scale=packed["weight_scale"].float(), args=weight_args(), dtype=torch.float32
    )
    return weight


def round_up(scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The scale in the checkpoint's dtype, rounded up where rounding to nearest would make it smaller:
    a smaller scale would push a group's largest weight past the int4 range, clipping it by more than
    half a step."""
    rounded = scale.to(dtype)
    up = torch.nextafter(rounded, torch.full_like(rounded, float("inf")))
    return torch.where(rounded.float() < scale, up, rounded)


@dataclass
class QuantizeReport:
    """What a run did, for the command's last line and the tests."""

    quantized: int = 0
    copied: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    shards: list[str] = field(default_factory=list)


def shard_names(src: Path) -> list[str]:
    index = src / "model.safetensors.index.json"
    if index.exists():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        return sorted(set(weight_map.values()))
    if (src / "model.safetensors").exists():
        return ["model.safetensors"]
    raise ValueError(f"{src} holds no safetensors checkpoint (model.safetensors or its index)")


def shard_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """One tensor at a time: safetensors maps the file, so only the tensor asked for is read."""
    with safe_open(str(path), framework="pt") as shard:
        for name in shard.keys():  # noqa: SIM118 (safe_open is not a mapping)
            yield name, shard.get_tensor(name)


def quantize_shard(src: Path, dst: Path, report: QuantizeReport) -> dict[str, str]:
    """Write `dst` from `src`; return the output tensor names (for the index)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in shard_tensors(src):
        report.bytes_in += tensor.numel() * tensor.element_size()
        if is_quantized(name, tensor):
            prefix = name.removesuffix("weight")
            try:
                parts = quantize_weight(tensor)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from exc
            out.update({prefix + key: value for key, value in parts.items()})
            report.quantized += 1
        else:
            out[name] = tensor
            report.copied += 1
    report.bytes_out += sum(t.numel() * t.element_size() for t in out.values())
    save_file(out, str(dst), metadata={"format": "pt"})
    return dict.fromkeys(out, dst.name)


# Weights in other formats that checkpoints ship beside the safetensors shards (Mixtral-8x7B's
# repository also holds its original consolidated.*.pt, 93 GB): bf16 copies, not for the 4-bit folder.
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".gguf")


def copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer, generation config, chat template...: everything but the weights and the config."""
    for item in src.iterdir():
        if item.suffix in WEIGHT_SUFFIXES or item.name in ("config.json", "model.safetensors.index.json"):
            continue
        if item.is_file():
            shutil.copy2(item, dst / item.name)


def write_config(src: Path, dst: Path) -> None:
    config = json.loads((src / "config.json").read_text())
    if "quantization_config" in config:
        raise ValueError(f"{src} is already quantized ({config['quantization_config'].get('quant_method')})")
    config["quantization_config"] = quantization_config()
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def quantize_checkpoint(src: Path, dst: Path, scheme: str = "w4a16") -> QuantizeReport:
    """Quantize the checkpoint in `src` into the new folder `dst`."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not one of: {', '.join(SCHEMES)}")
    if not (src / "config.json").exists():
        raise ValueError(f"{src} has no config.json: not a checkpoint folder")
    if dst.exists() and any(dst.iterdir()):
        raise ValueError(f"{dst} exists and is not empty")
    names = shard_names(src)
    dst.mkdir(parents=True, exist_ok=True)
    write_config(src, dst)
    report = QuantizeReport()
    weight_map: dict[str, str] = {}
    for number, name in enumerate(names, start=1):
        logger.info("shard %d/%d: %s", number, len(names), name)
        weight_map.update(quantize_shard(src / name, dst / name, report))
        report.shards.append(name)
    if len(names) > 1:
        index = {"metadata": {"total_size": report.bytes_out}, "weight_map": dict(sorted(weight_map.items()))}
        (dst / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    copy_side_files(src, dst)
    return report
