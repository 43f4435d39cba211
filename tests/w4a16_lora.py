"""LoRA on a 4-bit base made by `mixtral-serve quantize`, against the same adapter on the bf16 base:
the checkpoints and the runs, shared by tests/multihost/test_w4a16_lora.py (dense, CPU) and
tests/gpu/test_w4a16_lora.py (Mixtral, GPU).

The adapter's greedy text on the bf16 base is scored token by token (prompt_logprobs) through the
adapter on each base; each base's lm_head is scaled (tests/lora_adapter.py) so the next token is not
a near-tie. Both engines run bf16, and 4-bit rounding of the base moves the log-probabilities, so
the comparison is by tolerance, beside the adapter's own effect (the same text without it).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import httpx

from server.engine.quantize import quantize_checkpoint
from tests.app_client import app_client
from tests.conftest import engine_settings
from tests.lora_adapter import make_adapter, make_lora_base

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Les modèles de mélange d'experts"]
MAX_TOKENS = 8


def make_checkpoints(tiny_dir: Path, root: Path) -> dict[str, Path]:
    base = make_lora_base(tiny_dir, root / "base")
    quantize_checkpoint(base, root / "base-w4a16")
    return {"bf16": base, "w4a16": root / "base-w4a16", "adapter": make_adapter(base, root / "adapter")}


async def start(base: Path, adapter: Path) -> Any:
    from server.engine.vllm import VLLMEngine

    return await VLLMEngine.start(
        engine_settings(model=str(base), max_model_len=512, **lora_settings(adapter))
    )


def lora_settings(adapter: Path) -> dict[str, Any]:
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


async def compare(checkpoints: dict[str, Path]) -> dict[str, Any]:
    """The adapter's greedy texts on the bf16 base, scored through the adapter on each base; and the
    4-bit base's own greedy texts, with and without the adapter. One engine at a time."""
    adapter = checkpoints["adapter"]
    result: dict[str, Any] = {}
    engine = await start(checkpoints["bf16"], adapter)
    try:
        async with app_client(engine, **lora_settings(adapter)) as http:
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
        async with app_client(engine, **lora_settings(adapter)) as http:
            result["w4a16"] = [await scored(http, "zh", text) for text in texts]
            for model in ("base", "zh"):
                result[model] = [
                    (await complete(http, model=model, prompt=p, max_tokens=MAX_TOKENS))["text"]
                    for p in PROMPTS
                ]
    finally:
        await engine.shutdown()
    return result


def mean_gap(one: list[list[float]], other: list[list[float]]) -> float:
    return statistics.mean(
        abs(a - b) for x, y in zip(one, other, strict=True) for a, b in zip(x, y, strict=True)
    )


# Mean |log-probability gap| per token allowed between the adapter on the 4-bit base and on bf16.
MEAN_GAP = 1.0


def assert_scores_like_bf16(runs: dict[str, Any]) -> None:
    """The adapter's bf16 text scored on the 4-bit base stays close to its bf16 scores: within
    MEAN_GAP, and within a tenth of the adapter's own effect (the bf16 base scoring it without it)."""
    gaps = mean_gap(runs["w4a16"], runs["bf16"])
    adapter = mean_gap(runs["bf16 without adapter"], runs["bf16"])
    print(f"quantization gap {gaps:.3f} adapter's effect {adapter:.3f}")  # noqa: T201
    assert gaps < MEAN_GAP and gaps < adapter / 10, (gaps, adapter)


def assert_adapter_changes_answers(runs: dict[str, Any]) -> None:
    for adapted, base in zip(runs["zh"], runs["base"], strict=True):
        assert adapted != base
