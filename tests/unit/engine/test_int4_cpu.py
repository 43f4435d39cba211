"""A 4-bit (W4A16) Mixtral on a CPU whose vLLM backend has no int4 MoE kernel (no AMX: AMD's AVX2
machines) is refused before the engine starts, with the reason; a dense model or a bf16 one is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.config import Settings
from server.engine import vllm_quantization
from server.engine.quantize import quantization_config
from server.engine.tiny import TINY_CONFIG
from server.engine.vllm import engine_args
from server.engine.vllm_quantization import check_int4_moe_on_cpu, int4_weights
from tests.tiny_models import MISTRAL_7B


def checkpoint(folder: Path, config: dict[str, object], quantized: bool) -> str:
    folder.mkdir()
    extra = {"quantization_config": quantization_config()} if quantized else {}
    (folder / "config.json").write_text(json.dumps({**config, **extra}))
    return str(folder)


@pytest.fixture
def no_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_quantization, "cpu_runs_int4_moe", lambda: False)


def test_w4a16_mixtral_without_amx_is_refused_at_start_naming_amx(tmp_path: Path, no_amx: None) -> None:
    model = checkpoint(tmp_path / "mixtral-w4a16", TINY_CONFIG, quantized=True)
    with pytest.raises(ValueError, match="only on an Intel CPU with AMX") as info:
        engine_args(Settings(), model)
    assert "amx_tile" in str(info.value) and "this CPU has none" in str(info.value)


def test_a_dense_w4a16_model_and_a_bf16_mixtral_pass_without_amx(tmp_path: Path, no_amx: None) -> None:
    check_int4_moe_on_cpu(checkpoint(tmp_path / "mistral-w4a16", MISTRAL_7B, quantized=True))
    check_int4_moe_on_cpu(checkpoint(tmp_path / "mixtral-bf16", TINY_CONFIG, quantized=False))
    check_int4_moe_on_cpu("mistralai/Mixtral-8x7B-Instruct-v0.1")  # a hub id: not read here


def test_w4a16_mixtral_passes_where_the_cpu_has_amx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_quantization, "cpu_runs_int4_moe", lambda: True)
    check_int4_moe_on_cpu(checkpoint(tmp_path / "mixtral-w4a16", TINY_CONFIG, quantized=True))


def test_only_int4_compressed_tensors_counts_as_int4(tmp_path: Path) -> None:
    fp8 = {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 8}}}}
    awq = {"quant_method": "awq", "bits": 4}
    assert not int4_weights(checkpoint(tmp_path / "fp8", {"quantization_config": fp8}, quantized=False))
    assert not int4_weights(checkpoint(tmp_path / "awq", {"quantization_config": awq}, quantized=False))
    assert int4_weights(checkpoint(tmp_path / "w4a16", TINY_CONFIG, quantized=True))
