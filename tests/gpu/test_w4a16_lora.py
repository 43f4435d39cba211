"""QLoRA's serving half on a GPU, on Mixtral: a LoRA adapter on the tiny Mixtral quantized by
`mixtral-serve quantize --scheme w4a16` (Marlin W4A16 experts), against the same adapter on the bf16
base (tests/w4a16_lora.py). Passed on one H200 with vLLM 0.26 (2026-12-02: mean log-probability gap
0.60 against the adapter's own effect of 18.0). The CPU backend runs no LoRA on Mixtral
(tests/multihost/test_w4a16_lora.py is the dense one)."""

from __future__ import annotations

from typing import Any

import pytest

from server.engine.tiny import ensure_tiny_model
from tests.conftest import cache_dir
from tests.w4a16_lora import (
    assert_adapter_changes_answers,
    assert_scores_like_bf16,
    compare,
    make_checkpoints,
)

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="LoRA on Mixtral needs a CUDA GPU")]


@pytest.fixture(scope="module")
async def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Making the checkpoints leaves CUDA initialised in this process, and an engine core forked from
    # it then dies ("Cannot re-initialize CUDA in forked subprocess", seen on an H200 with vLLM
    # 0.26); spawned, it starts clean.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        return await compare(
            make_checkpoints(ensure_tiny_model(cache_dir()), tmp_path_factory.mktemp("w4a16-lora"))
        )


async def test_adapter_on_the_4bit_mixtral_scores_text_like_on_the_bf16_one(runs: dict[str, Any]) -> None:
    assert_scores_like_bf16(runs)


async def test_adapter_changes_the_4bit_mixtrals_answer(runs: dict[str, Any]) -> None:
    assert_adapter_changes_answers(runs)
