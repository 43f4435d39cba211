"""bench/studies/rank_shape/rank_shape.py: one GPU's share of Mixtral-8x7B under tensor parallelism,
as a config.

Held against the model itself: built from each config on torch's meta device (shapes, no memory),
the rank's model must have exactly half of every tensor TP=2 splits (attention projections,
experts) and all of every tensor it does not split here (embedding, output layer, norms, router)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.unit.bench.scripts import load_script

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "bench" / "studies" / "rank_shape" / "rank_shape.py"


def load_module() -> ModuleType:
    return load_script(SCRIPT)


def parameter_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    with torch.device("meta"):
        model = MixtralForCausalLM(MixtralConfig(**config))  # type: ignore[no-untyped-call]
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def test_a_rank_holds_half_of_what_tp2_splits_and_all_of_the_rest(tmp_path: Path) -> None:
    rank_shape = load_module()
    assert (
        rank_shape.main(["rank_shape", str(ROOT / "bench" / "models" / "mixtral-8x7b"), "2", str(tmp_path)])
        == 0
    )
    full_config = json.loads((ROOT / "bench" / "models" / "mixtral-8x7b" / "config.json").read_text())
    rank_config = json.loads((tmp_path / "config.json").read_text())
    full, rank = parameter_shapes(full_config), parameter_shapes(rank_config)
    assert full.keys() == rank.keys()
    split = ("q_proj", "k_proj", "v_proj", "o_proj", "experts")
    for name, shape in full.items():
        ratio = math.prod(shape) / math.prod(rank[name])
        assert ratio == (2 if any(part in name for part in split) else 1), (name, shape, rank[name])
    assert rank_config["head_dim"] == 128 and rank_config["hidden_size"] == 4096


def test_a_config_that_does_not_split_evenly_is_refused() -> None:
    with pytest.raises(ValueError, match="num_key_value_heads=8 does not split over 3"):
        load_module().rank_config(
            {"hidden_size": 48, "num_attention_heads": 6, "num_key_value_heads": 8, "intermediate_size": 96},
            3,
        )
