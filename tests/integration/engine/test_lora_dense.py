"""LoRA adapters end to end on the real CPU engine, on the tiny Mistral-7B (dense: vLLM's CPU backend
runs LoRA on dense models, not on Mixtral's experts; tests/gpu/test_lora_merge.py is the Mixtral one).

A random adapter made with PEFT on the attention projections (as the QLoRA recipes make them) is
served through --lora-modules; the same adapter merged by PEFT's `merge_and_unload` is served as a
plain model. Both engines run in float32, so the two ways of computing W + (alpha / r) * B @ A differ
only by float32 rounding: greedy output must be the same token for token, with log-probabilities
within LOGPROB_TOLERANCE, and differ from the base model's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.engine.base import Engine
from server.engine.tiny import ensure_model
from server.engine.warmup import warm_up
from tests.app_client import app_client
from tests.conftest import cache_dir, engine_settings
from tests.helpers import stream_events
from tests.lora_adapter import make_adapter, make_lora_base, write_merged_checkpoint
from tests.tiny_models import TINY_MISTRAL_7B_INSTRUCT

pytest.importorskip("peft")
PROMPTS = ["The capital of France is", "def fibonacci(n):", "Les modèles de mélange d'experts"]
MAX_TOKENS = 16
LOGPROB_TOLERANCE = 1e-3  # float32 on both sides; the adapter moves log-probabilities by whole units


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lora-dense")
    base = make_lora_base(ensure_model(cache_dir(), TINY_MISTRAL_7B_INSTRUCT), root / "base")
    adapter = make_adapter(base, root / "adapter", seed=0)
    other = make_adapter(base, root / "other-adapter", seed=1)
    assert write_merged_checkpoint(base, adapter, root / "merged", dtype="float32")
    return {"base": base, "adapter": adapter, "other": other, "merged": root / "merged"}


async def start(model: Path, **overrides: object) -> Engine:
    from server.engine.vllm import VLLMEngine

    return await VLLMEngine.start(
        engine_settings(model=str(model), max_model_len=512, dtype="float32", **overrides)
    )


@pytest.fixture(scope="module")
async def lora_engine(checkpoints: dict[str, Path]) -> AsyncIterator[Engine]:
    engine = await start(
        checkpoints["base"], served_model_name="base", lora_modules=[f"zh-lora={checkpoints['adapter']}"]
    )
    try:
        yield engine
    finally:
        await engine.shutdown()


@pytest.fixture(scope="module")
async def client(lora_engine: Engine, checkpoints: dict[str, Path]) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(
        lora_engine,
        served_model_name="base",
        lora_modules=[f"zh-lora={checkpoints['adapter']}"],
        allow_runtime_lora=True,
    ) as http:
        yield http


async def greedy(client: httpx.AsyncClient, model: str, prompt: str) -> dict[str, Any]:
    body = {"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0, "logprobs": 1}
    resp = await client.post("/v1/completions", json=body)
    assert resp.status_code == 200, resp.text
    logprobs: dict[str, Any] = resp.json()["choices"][0]["logprobs"]
    return logprobs


@pytest.fixture(scope="module")
async def merged_outputs(checkpoints: dict[str, Path], client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The merged model's greedy runs, from an engine of its own (the adapter's engine idles
    meanwhile), stopped once they are done."""
    engine = await start(checkpoints["merged"], served_model_name="merged")
    try:
        async with app_client(engine, served_model_name="merged") as http:
            return [await greedy(http, "merged", p) for p in PROMPTS]
    finally:
        await engine.shutdown()


async def test_adapter_output_equals_the_peft_merged_model(
    client: httpx.AsyncClient, merged_outputs: list[dict[str, Any]]
) -> None:
    adapted = [await greedy(client, "zh-lora", p) for p in PROMPTS]
    for through_adapter, merged in zip(adapted, merged_outputs, strict=True):
        assert through_adapter["tokens"] == merged["tokens"]
        gaps = [
            abs(a - b)
            for a, b in zip(through_adapter["token_logprobs"], merged["token_logprobs"], strict=True)
        ]
        assert max(gaps) < LOGPROB_TOLERANCE, gaps
        print(f"{len(merged['tokens'])} tokens equal, log-probabilities at most {max(gaps):.2e} apart")  # noqa: T201


async def test_adapter_output_differs_from_the_base_model(client: httpx.AsyncClient) -> None:
    for prompt in PROMPTS:
        adapted, base = await greedy(client, "zh-lora", prompt), await greedy(client, "base", prompt)
        assert adapted["tokens"] != base["tokens"]


async def test_adapter_streams_the_same_text_as_it_answers(client: httpx.AsyncClient) -> None:
    body = {"model": "zh-lora", "prompt": PROMPTS[0], "max_tokens": MAX_TOKENS, "temperature": 0}
    whole = (await client.post("/v1/completions", json=body)).json()
    events = await stream_events(client, "/v1/completions", {**body, "stream": True})
    assert "".join(e["choices"][0]["text"] for e in events if e["choices"]) == whole["choices"][0]["text"]
    assert {e["model"] for e in events} == {"zh-lora"} and whole["model"] == "zh-lora"


async def test_adapters_are_listed_with_their_parent(
    client: httpx.AsyncClient, checkpoints: dict[str, Path]
) -> None:
    by_id = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
    assert by_id["zh-lora"]["parent"] == "base"
    assert by_id["zh-lora"]["root"] == str(checkpoints["adapter"])


async def test_adapter_loaded_at_run_time_serves_then_unloads(
    client: httpx.AsyncClient, checkpoints: dict[str, Path]
) -> None:
    load = {"lora_name": "other", "lora_path": str(checkpoints["other"])}
    loaded = await client.post("/v1/load_lora_adapter", json=load)
    assert loaded.status_code == 200, loaded.text
    other = await greedy(client, "other", PROMPTS[0])
    assert other["tokens"] != (await greedy(client, "zh-lora", PROMPTS[0]))["tokens"]
    assert "other" in [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
    unloaded = await client.post("/v1/unload_lora_adapter", json={"lora_name": "other"})
    assert unloaded.status_code == 200, unloaded.text
    after = await client.post("/v1/completions", json={"model": "other", "prompt": "x", "max_tokens": 1})
    assert after.status_code == 404 and after.json()["error"]["code"] == "model_not_found"


async def test_the_warm_up_runs_through_the_first_adapter(
    lora_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="server.engine.warmup"):
        assert await warm_up(lora_engine) > 0
    messages = [r.getMessage() for r in caplog.records if r.name == "server.engine.warmup"]
    assert any(m.startswith("warm-up of adapter 'zh-lora': ") for m in messages), messages
    for _ in range(200):  # the engine's next report shows the batch empty again
        if lora_engine.stats().running == 0:
            break
        await asyncio.sleep(0.01)
    assert lora_engine.stats().running == 0
