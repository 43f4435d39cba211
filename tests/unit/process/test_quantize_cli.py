"""`mixtral-serve quantize SRC DST --scheme w4a16` through the real entry point, on the tiny Mixtral."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.engine.tiny import ensure_tiny_model
from server.process.cli import main
from tests.conftest import cache_dir


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return int(stop.value.code or 0)


def test_quantize_writes_a_checkpoint_that_names_its_method(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = ensure_tiny_model(cache_dir()), tmp_path / "tiny-w4a16"
    assert run(["quantize", str(src), str(dst), "--scheme", "w4a16"]) == 0
    out = capsys.readouterr().out
    assert "56 weights quantized, 9 tensors kept" in out and f"mixtral-serve --model {dst}" in out
    config = json.loads((dst / "config.json").read_text())
    assert config["quantization_config"]["format"] == "pack-quantized"
    assert (dst / "model.safetensors").stat().st_size < 0.8 * (src / "model.safetensors").stat().st_size
    assert (dst / "tokenizer.json").read_bytes() == (src / "tokenizer.json").read_bytes()


def test_quantize_errors_exit_1_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["quantize", str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    assert "has no config.json" in capsys.readouterr().err


def test_an_unknown_scheme_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["quantize", str(tmp_path), str(tmp_path / "out"), "--scheme", "nf4"]) == 2
    assert "invalid choice: 'nf4'" in capsys.readouterr().err
