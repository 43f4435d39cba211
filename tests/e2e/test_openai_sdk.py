"""The official `openai` SDK against a real `mixtral-serve` process (sync and async clients)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.helpers import metric_value

MESSAGES = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def server_url(shared_server_url: str) -> str:
    return shared_server_url


@pytest.fixture(scope="module")
def sdk(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)


def test_models_list(sdk: openai.OpenAI) -> None:
    models = sdk.models.list()
    assert [m.id for m in models.data] == ["tiny-mixtral"]


def test_chat_completion(sdk: openai.OpenAI) -> None:
    resp = sdk.chat.completions.create(model="tiny-mixtral", messages=MESSAGES, max_tokens=8, temperature=0)
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 8


def test_chat_stream_matches_non_stream(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(model="tiny-mixtral", messages=MESSAGES, max_tokens=10, temperature=0)
    stream = sdk.chat.completions.create(
        model="tiny-mixtral",
        messages=MESSAGES,
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10


def test_completion_and_stream(sdk: openai.OpenAI) -> None:
    whole = sdk.completions.create(
        model="tiny-mixtral", prompt="Once upon a time", max_tokens=6, temperature=0
    )
    assert whole.object == "text_completion"
    assert whole.choices[0].finish_reason == "length"
    pieces = sdk.completions.create(
        model="tiny-mixtral", prompt="Once upon a time", max_tokens=6, temperature=0, stream=True
    )
    assert "".join(p.choices[0].text for p in pieces) == whole.choices[0].text


def test_sdk_raises_typed_errors(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="tiny-mixtral", messages=MESSAGES, max_tokens=5000)
    assert bad.value.code == "context_length_exceeded"


def test_async_client_streams_concurrently(server_url: str) -> None:
    async def run() -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)

        async def one(i: int) -> str:
            stream = await client.chat.completions.create(
                model="tiny-mixtral",
                messages=[{"role": "user", "content": f"Story {i}"}],
                max_tokens=12,
                stream=True,
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        try:
            return await asyncio.gather(*(one(i) for i in range(4)))
        finally:
            await client.close()

    texts = asyncio.run(run())
    assert len(texts) == 4 and all(texts)


def test_async_client_without_streaming(server_url: str) -> None:
    async def run() -> tuple[openai.types.chat.ChatCompletion, openai.types.Completion]:
        async with openai.AsyncOpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0) as client:
            chat = await client.chat.completions.create(
                model="tiny-mixtral", messages=MESSAGES, max_tokens=6, temperature=0
            )
            text = await client.completions.create(model="tiny-mixtral", prompt="Once", max_tokens=3)
            return chat, text

    chat, text = asyncio.run(run())
    assert chat.choices[0].message.content and chat.usage is not None and chat.usage.completion_tokens == 6
    assert text.choices[0].text and text.usage is not None and text.usage.completion_tokens == 3


def test_client_disconnect_aborts_engine_request(server_url: str) -> None:
    """A stream dropped mid-generation leaves the engine's running batch at once."""
    body = {"messages": MESSAGES, "max_tokens": 1500, "ignore_eos": True, "stream": True}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{server_url}/v1/chat/completions", json=body) as resp,
    ):
        lines = resp.iter_lines()
        for _ in range(6):
            next(lines)
        running = metric_value(http.get(f"{server_url}/metrics").text, "mixtral_num_requests_running")
        assert running == 1
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        running = metric_value(httpx.get(f"{server_url}/metrics").text, "mixtral_num_requests_running")
        if running == 0:
            break
        time.sleep(0.05)
    assert running == 0  # 1,500 tokens would have kept it running for many seconds
    # The engine is free again: the next request is served normally.
    resp = httpx.post(
        f"{server_url}/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 4}, timeout=30
    )
    assert resp.status_code == 200 and resp.json()["usage"]["completion_tokens"] == 4


def test_server_log_shows_no_errors(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert httpx.get(f"{server_url}/health").status_code == 200
    logs = list(Path(tmp_path_factory.getbasetemp()).glob("e2e*/server.log"))
    assert logs
    text = logs[0].read_text()
    assert "Traceback" not in text
