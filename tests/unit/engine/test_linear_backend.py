"""`--linear-backend`: an operator's choice reaches vLLM checked and normalised; unset, a W4A16
checkpoint on Hopper gets Marlin for its linear layers (measured faster than vLLM's Machete there),
and everything else keeps vLLM's own choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.config import Settings
from server.engine import vllm_quantization
from server.engine.quantize import quantization_config
from server.engine.tiny import TINY_CONFIG
from server.engine.vllm import engine_args
from server.engine.vllm_quantization import int4_weight_only, linear_backend


class FakeGpu:
    """What vLLM's platform reports on a GPU of one compute capability; the CPU here cannot."""

    def __init__(self, capability: int) -> None:
        self.capability = capability

    def is_cuda(self) -> bool:
        return True

    def is_cpu(self) -> bool:
        return False

    def is_device_capability(self, capability: int) -> bool:
        return capability == self.capability


def checkpoint(folder: Path, quant: dict[str, object] | None) -> str:
    folder.mkdir()
    extra = {"quantization_config": quant} if quant else {}
    (folder / "config.json").write_text(json.dumps({**TINY_CONFIG, **extra}))
    return str(folder)


def w4a8() -> dict[str, object]:
    config = quantization_config()
    group = next(iter(config["config_groups"].values()))
    group["input_activations"] = {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True}
    return config


def test_an_operators_choice_is_normalised_and_passed_to_vllm() -> None:
    assert engine_args(Settings(linear_backend="Machete"), "/m").linear_backend == "machete"
    dashed = Settings(linear_backend="flashinfer-cutlass")
    assert engine_args(dashed, "/m").linear_backend == "flashinfer_cutlass"


def test_an_unknown_backend_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'fastest' is not a linear backend of vLLM") as info:
        engine_args(Settings(linear_backend="fastest"), "/m")
    assert "marlin" in str(info.value) and "machete" in str(info.value)


def test_unset_on_this_cpu_vllm_chooses(tmp_path: Path) -> None:
    model = checkpoint(tmp_path / "w4a16", quantization_config())
    assert linear_backend(None, model) is None
    assert engine_args(Settings(), "/m").linear_backend == "auto"  # vLLM's own default


@pytest.fixture
def hopper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_quantization, "current_platform", FakeGpu(90))


def test_unset_on_hopper_a_w4a16_checkpoint_gets_marlin(tmp_path: Path, hopper: None) -> None:
    assert linear_backend(None, checkpoint(tmp_path / "w4a16", quantization_config())) == "marlin"
    # An explicit choice wins, also "auto" (vLLM's pick, Machete).
    assert linear_backend("auto", str(tmp_path / "w4a16")) == "auto"


def test_unset_on_hopper_other_checkpoints_keep_vllms_choice(tmp_path: Path, hopper: None) -> None:
    fp8 = {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 8}}}}
    assert linear_backend(None, checkpoint(tmp_path / "bf16", None)) is None
    assert linear_backend(None, checkpoint(tmp_path / "fp8", fp8)) is None
    assert linear_backend(None, checkpoint(tmp_path / "w4a8", w4a8())) is None  # not a Marlin W4A16 layer
    assert linear_backend(None, "mistralai/Mixtral-8x7B-Instruct-v0.1") is None  # a hub id: not read


def test_unset_off_hopper_vllm_chooses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ampere and Blackwell have no Machete; vLLM already picks Marlin there."""
    model = checkpoint(tmp_path / "w4a16", quantization_config())
    for capability in (80, 100):
        monkeypatch.setattr(vllm_quantization, "current_platform", FakeGpu(capability))
        assert linear_backend(None, model) is None


def test_weight_only_int4_is_told_from_w4a8(tmp_path: Path) -> None:
    assert int4_weight_only(checkpoint(tmp_path / "w4a16", quantization_config()))
    assert not int4_weight_only(checkpoint(tmp_path / "w4a8", w4a8()))
    assert not int4_weight_only(checkpoint(tmp_path / "bf16", None))
