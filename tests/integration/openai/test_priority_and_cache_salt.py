"""`priority` under --scheduling-policy priority, and `cache_salt`, on real engines.

The priority test starts a second engine (priority scheduling, one sequence at a time) beside the
session's, so that waiting requests are ordered by the scheduler and the order can be observed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.engine.base import Engine, GenerateRequest, SamplingOptions
from tests.app_client import app_client
from tests.conftest import engine_settings
from tests.helpers import chat


@pytest.fixture(scope="module")
async def priority_client() -> AsyncIterator[httpx.AsyncClient]:
    from server.engine.vllm import VLLMEngine

    settings = {"scheduling_policy": "priority", "max_num_seqs": 1}
    engine = await VLLMEngine.start(engine_settings(**settings))
    try:
        async with app_client(engine, **settings) as http:
            yield http
    finally:
        await engine.shutdown()


async def test_waiting_requests_run_lowest_priority_value_first(priority_client: httpx.AsyncClient) -> None:
    """One sequence at a time: while a long request runs, a request of priority 5 and then one of
    priority -5 wait; the later one, with the lower value, must finish first (FCFS: the other)."""
    finished: dict[str, float] = {}

    async def run(name: str, priority: int, max_tokens: int) -> None:
        body = {"prompt": [1, 415], "max_tokens": max_tokens, "ignore_eos": True, "priority": priority}
        resp = await priority_client.post("/v1/completions", json=body)
        assert resp.status_code == 200, resp.text
        finished[name] = time.monotonic()

    # The first request must still run when both others have reached the scheduler: 400 tokens
    # take well over a second here (120 once ended before the last one arrived, on a fast CPU).
    first = asyncio.create_task(run("running", 0, 400))
    await asyncio.sleep(0.3)
    late = asyncio.create_task(run("low", 5, 4))
    await asyncio.sleep(0.05)
    urgent = asyncio.create_task(run("urgent", -5, 4))
    sent = time.monotonic()
    await asyncio.gather(first, late, urgent)
    assert finished["running"] > sent + 0.2, f"inconclusive: the first request ended too soon, {finished}"
    assert finished["urgent"] < finished["low"], finished


async def cached_tokens(engine: Engine, prompt: list[int], salt: str | None) -> int:
    request = GenerateRequest(
        f"salt-{uuid.uuid4().hex}", prompt, SamplingOptions(max_tokens=1, temperature=0.0), cache_salt=salt
    )
    cached = 0
    async for delta in engine.generate(request):
        cached = max(cached, delta.num_cached_prompt_tokens)
    return cached


async def test_cache_salt_isolates_the_prefix_cache(engine: Engine) -> None:
    """Prefix caching is on (vLLM's default): the same prompt reuses its cached blocks only under the
    same salt; another salt, or none, computes it again."""
    offset = uuid.uuid4().int % 20000
    prompt = [1, *range(1000 + offset, 1600 + offset)]  # several KV blocks, in no other test
    assert await cached_tokens(engine, prompt, "salt-a") == 0
    assert await cached_tokens(engine, prompt, "salt-a") > 0
    assert await cached_tokens(engine, prompt, "salt-b") == 0
    assert await cached_tokens(engine, prompt, None) == 0


async def test_the_api_hands_cache_salt_and_priority_to_the_engine(
    client: httpx.AsyncClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[GenerateRequest] = []
    generate = engine.generate

    def spy(request: GenerateRequest) -> Any:
        seen.append(request)
        return generate(request)

    monkeypatch.setattr(engine, "generate", spy)
    resp = await client.post("/v1/chat/completions", json=chat("hi", max_tokens=1, cache_salt="s-1"))
    assert resp.status_code == 200, resp.text
    resp = await client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 1, "cache_salt": "s-2"})
    assert resp.status_code == 200, resp.text
    assert [r.cache_salt for r in seen] == ["s-1", "s-2"]
    assert [r.priority for r in seen] == [0, 0]


@pytest.mark.parametrize("salt", ["", "a/b", "x" * 129])
async def test_a_malformed_cache_salt_is_400(client: httpx.AsyncClient, salt: str) -> None:
    resp = await client.post("/v1/chat/completions", json=chat("hi", max_tokens=1, cache_salt=salt))
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "cache_salt"
