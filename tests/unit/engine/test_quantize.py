"""The W4A16 quantizer (server/engine/quantize.py) on small random tensors and a two-shard checkpoint
written here: no engine. Serving its output is tests/integration/engine/test_w4a16.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors import (
    CompressedTensorsConfig,
)
from vllm.model_executor.layers.quantization.compressed_tensors.utils import should_ignore_layer

from server.engine.quantize import (
    GROUP_SIZE,
    dequantize_weight,
    quantization_config,
    quantize_checkpoint,
    quantize_weight,
)

HIDDEN, FFN = 256, 512


def random_weight(rows: int, cols: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=generator) * 0.02
    weight[0, :GROUP_SIZE] = 0.0  # a group of zeros: no division by a zero scale
    weight[1, 5] = 0.9  # an outlier: its group's scale is large, the others' stay small
    return weight.to(torch.bfloat16)


@pytest.mark.parametrize(
    ("rows", "cols", "seed"), [(HIDDEN, HIDDEN, 0), (FFN, HIDDEN, 1), (HIDDEN, FFN, 2), (2500, HIDDEN, 3)]
)
def test_round_trip_error_is_at_most_half_a_step_in_every_group(rows: int, cols: int, seed: int) -> None:
    weight = random_weight(rows, cols, seed)
    packed = quantize_weight(weight)
    error = (dequantize_weight(packed) - weight.float()).abs()
    worst = error.reshape(rows, cols // GROUP_SIZE, GROUP_SIZE).amax(dim=-1)
    scale = packed["weight_scale"].float()
    assert torch.all(worst <= scale / 2 * (1 + 1e-6)), (worst / scale).max()
    assert torch.all(dequantize_weight(packed)[0, :GROUP_SIZE] == 0)


def test_the_packed_triple_has_the_shapes_vllm_allocates() -> None:
    """vLLM's CompressedTensorsWNA16 makes weight_packed [out, in / 8] int32 (eight 4-bit values in
    each), weight_scale [out, in / group] in the model's dtype, weight_shape the two sizes."""
    packed = quantize_weight(random_weight(FFN, HIDDEN, 3))
    assert packed["weight_packed"].dtype == torch.int32
    assert tuple(packed["weight_packed"].shape) == (FFN, HIDDEN // 8)
    assert packed["weight_scale"].dtype == torch.bfloat16
    assert tuple(packed["weight_scale"].shape) == (FFN, HIDDEN // GROUP_SIZE)
    assert packed["weight_shape"].tolist() == [FFN, HIDDEN]


def test_values_use_the_whole_symmetric_int4_range() -> None:
    """Symmetric: a group's largest magnitude maps to the end of [-8, 7]; nothing is shifted."""
    weight = torch.zeros(1, GROUP_SIZE, dtype=torch.bfloat16)
    weight[0, 0], weight[0, 1] = 1.0, -1.0
    back = dequantize_weight(quantize_weight(weight))
    assert back[0, 0] > 0.9 and back[0, 1] < -0.9 and torch.all(back[0, 2:] == 0)


def test_an_input_width_off_the_group_size_is_refused() -> None:
    with pytest.raises(ValueError, match="not a multiple of the group size 128"):
        quantize_weight(torch.zeros(8, 200, dtype=torch.bfloat16))


# A Mixtral layer's tensors, cut down, over two shards as large checkpoints are saved.
SHARDS: dict[str, dict[str, tuple[int, ...]]] = {
    "model-00001-of-00002.safetensors": {
        "model.embed_tokens.weight": (1000, HIDDEN),
        "model.layers.0.input_layernorm.weight": (HIDDEN,),
        "model.layers.0.self_attn.q_proj.weight": (HIDDEN, HIDDEN),
        "model.layers.0.self_attn.k_proj.weight": (64, HIDDEN),
        "model.layers.0.self_attn.v_proj.weight": (64, HIDDEN),
        "model.layers.0.self_attn.o_proj.weight": (HIDDEN, HIDDEN),
        "model.layers.0.block_sparse_moe.gate.weight": (8, HIDDEN),
    },
    "model-00002-of-00002.safetensors": {
        "model.layers.0.block_sparse_moe.experts.0.w1.weight": (FFN, HIDDEN),
        "model.layers.0.block_sparse_moe.experts.0.w2.weight": (HIDDEN, FFN),
        "model.layers.0.block_sparse_moe.experts.0.w3.weight": (FFN, HIDDEN),
        "model.layers.0.post_attention_layernorm.weight": (HIDDEN,),
        "model.norm.weight": (HIDDEN,),
        "lm_head.weight": (1000, HIDDEN),
    },
}
QUANTIZED = {name for shard in SHARDS.values() for name in shard if "proj" in name or ".experts." in name}


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    src = tmp_path / "bf16"
    src.mkdir()
    weight_map = {}
    for number, (shard, shapes) in enumerate(SHARDS.items()):
        generator = torch.Generator().manual_seed(number)
        tensors = {
            name: torch.randn(shape, generator=generator).to(torch.bfloat16) for name, shape in shapes.items()
        }
        save_file(tensors, str(src / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, shard))
    (src / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (src / "config.json").write_text(json.dumps({"model_type": "mixtral", "num_local_experts": 8}))
    (src / "tokenizer.json").write_text("{}")
    (src / "consolidated.00.pt").write_bytes(b"original weights")
    return src


def read(folder: Path, shard: str) -> dict[str, torch.Tensor]:
    with safe_open(str(folder / shard), framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118


def test_checkpoint_keeps_its_shards_and_copies_what_it_does_not_quantize_byte_for_byte(
    checkpoint: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "w4a16"
    report = quantize_checkpoint(checkpoint, dst)
    assert (report.quantized, report.copied) == (len(QUANTIZED), 13 - len(QUANTIZED))
    assert report.bytes_out < report.bytes_in
    index = json.loads((dst / "model.safetensors.index.json").read_text())["weight_map"]
    for shard, shapes in SHARDS.items():
        before, after = read(checkpoint, shard), read(dst, shard)
        for name in shapes:
            if name in QUANTIZED:
                prefix = name.removesuffix("weight")
                assert name not in after
                assert {f"{prefix}weight_{part}" for part in ("packed", "scale", "shape")} <= set(after)
                assert index[f"{prefix}weight_packed"] == shard
            else:
                assert after[name].dtype == before[name].dtype
                assert after[name].view(torch.uint8).equal(before[name].view(torch.uint8)), name
                assert index[name] == shard
    assert (dst / "tokenizer.json").read_text() == "{}"
    assert not (dst / "consolidated.00.pt").exists()  # the bf16 weights in another format stay behind


def test_config_is_read_by_vllm_as_w4a16_groups_of_128_with_the_router_and_lm_head_ignored(
    checkpoint: Path, tmp_path: Path
) -> None:
    quantize_checkpoint(checkpoint, tmp_path / "w4a16")
    config = json.loads((tmp_path / "w4a16" / "config.json").read_text())
    assert config["num_local_experts"] == 8  # the rest of the config is kept
    vllm_config = CompressedTensorsConfig.from_config(config["quantization_config"])
    assert vllm_config.quant_format == "pack-quantized"
    weights = vllm_config.target_scheme_map["Linear"]["weights"]
    assert (weights.num_bits, weights.group_size, weights.symmetric, weights.strategy) == (
        4,
        128,
        True,
        "group",
    )
    assert vllm_config.target_scheme_map["Linear"]["input_activations"] is None
    assert vllm_config._is_wNa16_group_channel(weights, None)
    ignore = vllm_config.ignore
    assert should_ignore_layer("lm_head", ignore)
    assert should_ignore_layer("model.layers.31.block_sparse_moe.gate", ignore)
    assert not should_ignore_layer("model.layers.31.block_sparse_moe.experts", ignore)
    fused = {"qkv_proj": ["q_proj", "k_proj", "v_proj"]}
    assert not should_ignore_layer("model.layers.0.self_attn.qkv_proj", ignore, fused_mapping=fused)


def test_an_already_quantized_checkpoint_and_a_used_destination_are_refused(
    checkpoint: Path, tmp_path: Path
) -> None:
    quantize_checkpoint(checkpoint, tmp_path / "once")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_checkpoint(tmp_path / "once", tmp_path / "twice")
    with pytest.raises(ValueError, match="exists and is not empty"):
        quantize_checkpoint(checkpoint, tmp_path / "once")
    with pytest.raises(ValueError, match="scheme 'w3a16'"):
        quantize_checkpoint(checkpoint, tmp_path / "other", scheme="w3a16")


def test_the_config_is_compressed_tensors_own_model() -> None:
    config = quantization_config()
    assert config["quant_method"] == "compressed-tensors" and config["quantization_status"] == "compressed"
    assert config["config_groups"]["group_0"]["targets"] == ["Linear"]
