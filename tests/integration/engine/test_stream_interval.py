"""`--stream-interval N` on the real engine: the first token comes alone (time to first token is not
delayed), then events carry N tokens each, and no token is lost. The setting's default, 1, is what
every other streaming test runs on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.engine.base import Engine
from tests.app_client import app_client
from tests.conftest import engine_settings
from tests.helpers import stream_events

INTERVAL = 4
BODY = {
    "prompt": "The capital of France is",
    "max_tokens": 9,
    "temperature": 0,
    "ignore_eos": True,
    "logprobs": 0,
}


@pytest.fixture(scope="module")
async def interval_engine() -> AsyncIterator[Engine]:
    from server.engine.vllm import VLLMEngine

    running = await VLLMEngine.start(engine_settings(stream_interval=INTERVAL))
    yield running
    await running.shutdown()


def tokens_per_event(events: list[dict[str, Any]]) -> list[int]:
    counts = [
        len(choice["logprobs"]["tokens"]) for e in events for choice in e["choices"] if choice["logprobs"]
    ]
    return [c for c in counts if c]


async def test_events_carry_the_interval_after_a_first_token_alone(interval_engine: Engine) -> None:
    async with app_client(interval_engine) as http:
        body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
        events = await stream_events(http, "/v1/completions", body)
    counts = tokens_per_event(events)
    assert counts[0] == 1 and sum(counts) == 9, counts
    # vLLM sends at every INTERVAL new tokens; a reader that falls behind gets several sends at once.
    assert all(c % INTERVAL == 0 for c in counts[1:]), counts
    assert events[-1]["usage"]["completion_tokens"] == 9
    assert "".join(choice["text"] for e in events for choice in e["choices"])
