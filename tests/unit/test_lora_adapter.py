"""The reference side of the LoRA test (tests/gpu/test_lora_merge.py): the checkpoint merged by PEFT
computes what the base model plus the adapter computes, and differs from the base model."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.engine.tiny import TINY_CONFIG, ensure_tiny_model
from tests.conftest import cache_dir
from tests.lora_adapter import (
    ATTENTION_PROJECTIONS,
    make_adapter,
    make_lora_base,
    write_merged_checkpoint,
)

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


def logits(model: object, ids: object) -> object:
    with torch.no_grad():
        return model(ids).logits  # type: ignore[operator]


def test_merged_checkpoint_computes_base_plus_adapter(tmp_path: Path) -> None:
    base_dir = make_lora_base(ensure_tiny_model(cache_dir()), tmp_path / "base")
    adapter = make_adapter(base_dir, tmp_path / "adapter")
    replaced = write_merged_checkpoint(base_dir, adapter, tmp_path / "merged", dtype="float32")

    layers = TINY_CONFIG["num_hidden_layers"]
    assert len(replaced) == layers * len(ATTENTION_PROJECTIONS)
    assert {name.split(".")[-2] for name in replaced} == set(ATTENTION_PROJECTIONS)

    load = transformers.AutoModelForCausalLM.from_pretrained
    ids = torch.tensor([[1, 415, 2936, 9060, 285, 1142, 28705, 754, 272, 17898, 3914]])
    base = load(base_dir, dtype=torch.float32)
    with_adapter = logits(peft.PeftModel.from_pretrained(load(base_dir, dtype=torch.float32), adapter), ids)
    merged = logits(load(tmp_path / "merged", dtype=torch.float32), ids)
    plain = logits(base, ids)

    assert torch.allclose(merged, with_adapter, atol=1e-3, rtol=0)
    # The adapter moves the logits by far more than the merge's rounding.
    assert (with_adapter - plain).abs().max() > 100 * (merged - with_adapter).abs().max()
    assert not torch.equal(with_adapter.argmax(-1), plain.argmax(-1))


def test_untouched_tensors_are_the_base_checkpoints(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    base_dir = make_lora_base(ensure_tiny_model(cache_dir()), tmp_path / "base")
    adapter = make_adapter(base_dir, tmp_path / "adapter", seed=1)
    write_merged_checkpoint(base_dir, adapter, tmp_path / "merged", dtype="bfloat16")
    for path in sorted(base_dir.glob("*.safetensors")):
        before, after = load_file(path), load_file(tmp_path / "merged" / path.name)
        assert before.keys() == after.keys()
        for name, tensor in before.items():
            adapted = name.split(".")[-2] in ATTENTION_PROJECTIONS
            assert torch.equal(tensor, after[name]) != adapted, name
            assert after[name].dtype == tensor.dtype
