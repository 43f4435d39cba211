"""Mistral-7B-Instruct's shape on the real engine, served by the same code as Mixtral: a dense
MistralForCausalLM with grouped-query attention and a sliding window shorter than the prompt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.engine.base import Engine
from tests.app_client import app_client
from tests.helpers import chat, stream_events
from tests.integration.http.test_chat import reference_prompt_tokens
from tests.tiny_models import SLIDING_WINDOW, TINY_MISTRAL_7B_INSTRUCT, running

LONG_QUESTION = " ".join(f"Question part {i}: what comes after {i}?" for i in range(12))


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[Engine]:
    async with running(TINY_MISTRAL_7B_INSTRUCT) as engine:
        yield engine


@pytest.fixture(scope="module")
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(engine) as http:
        yield http


def test_the_checkpoint_is_dense_with_grouped_query_attention_and_a_sliding_window(engine: Engine) -> None:
    config = json.loads((Path(engine.model_card.root) / "config.json").read_text())
    assert config["architectures"] == ["MistralForCausalLM"]
    assert "num_local_experts" not in config
    assert config["num_key_value_heads"] < config["num_attention_heads"]
    assert config["sliding_window"] == SLIDING_WINDOW


async def test_a_chat_longer_than_the_sliding_window_streams_to_its_end(client: httpx.AsyncClient) -> None:
    body = chat(
        LONG_QUESTION, max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    events = await stream_events(client, "/v1/chat/completions", body)
    usage = events[-1]["usage"]
    assert usage["prompt_tokens"] > 4 * SLIDING_WINDOW
    assert usage["completion_tokens"] == 12
    assert [c.get("finish_reason") for e in events for c in e["choices"]][-1] == "length"


async def test_greedy_answers_past_the_window_are_the_same_streamed_or_not(client: httpx.AsyncClient) -> None:
    body = chat(LONG_QUESTION, max_tokens=12, temperature=0)
    whole = (await client.post("/v1/chat/completions", json=body)).json()["choices"][0]["message"]["content"]
    events = await stream_events(client, "/v1/chat/completions", {**body, "stream": True})
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == whole


async def test_mistral_7b_instructs_template_is_detected_and_renders_mistral_commons_ids(
    client: httpx.AsyncClient,
) -> None:
    messages = [("system", "Be brief."), ("user", LONG_QUESTION)]
    body = {"messages": [{"role": r, "content": c} for r, c in messages]}
    resp = await client.post("/tokenize", json=body)
    assert resp.json()["count"] == reference_prompt_tokens(messages)
