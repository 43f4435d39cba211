"""bench/studies/w4a16_size/w4a16_size.py: the W4A16 checkpoint's size computed from a config, checked
against what the quantizer writes for the tiny Mixtral, and Mixtral-8x7B's figure against the target."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from safetensors import safe_open

from server.engine.quantize import quantization_config, quantize_checkpoint
from server.engine.tiny import ensure_tiny_model
from tests.conftest import cache_dir
from tests.unit.bench.scripts import load_script

BENCH = Path(__file__).resolve().parents[3] / "bench"


def load_module() -> ModuleType:
    return load_script(BENCH / "studies" / "w4a16_size" / "w4a16_size.py")


def test_computed_size_is_the_quantizers_output_on_the_tiny_mixtral(tmp_path: Path) -> None:
    module = load_module()
    src = ensure_tiny_model(cache_dir())
    config = json.loads((src / "config.json").read_text())
    with safe_open(str(src / "model.safetensors"), framework="pt") as f:
        assert set(module.tensors(config)) == set(f.keys())
    report = quantize_checkpoint(src, tmp_path / "w4a16")
    assert module.size_bytes(config) == (report.bytes_in, report.bytes_out)


def test_mixtral_8x7b_weights_fit_the_25_gib_target() -> None:
    config = json.loads((BENCH / "models" / "mixtral-8x7b" / "config.json").read_text())
    assert load_module().size(config) == {"bf16_gib": 86.99, "w4a16_gib": 22.79, "kept_bf16_gib": 0.49}


def test_the_bench_shape_is_the_real_config_with_the_quantizers_config() -> None:
    real = json.loads((BENCH / "models" / "mixtral-8x7b" / "config.json").read_text())
    shape = json.loads((BENCH / "models" / "mixtral-8x7b-w4a16" / "config.json").read_text())
    assert shape == {**real, "quantization_config": quantization_config()}
