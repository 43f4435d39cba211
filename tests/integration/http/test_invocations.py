"""SageMaker's routes, which `vllm serve` also answers: POST /invocations and /ping, on the real engine."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import chat, stream_events


async def test_invocations_with_messages_answers_as_chat_completions(client: httpx.AsyncClient) -> None:
    body = chat("what is 1+1?", max_tokens=5, temperature=0)
    direct = await client.post("/v1/chat/completions", json=body)
    routed = await client.post("/invocations", json=body)
    assert routed.status_code == 200, routed.text
    assert routed.json()["object"] == "chat.completion"
    assert routed.json()["choices"] == direct.json()["choices"]


async def test_invocations_with_prompt_answers_as_completions(client: httpx.AsyncClient) -> None:
    body = {"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0}
    direct = await client.post("/v1/completions", json=body)
    routed = await client.post("/invocations", json=body)
    assert routed.status_code == 200, routed.text
    assert routed.json()["object"] == "text_completion"
    assert routed.json()["choices"] == direct.json()["choices"]


async def test_invocations_streams_like_the_direct_route(client: httpx.AsyncClient) -> None:
    events = await stream_events(client, "/invocations", chat("Hi", max_tokens=4, stream=True))
    assert events[0]["object"] == "chat.completion.chunk"
    assert events[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, "temperature"),
        ({"prompt": "hi", "n": 0}, "n"),
        ({"input": "hi"}, None),
    ],
)
async def test_invocations_refuses_bad_bodies_as_the_direct_routes_do(
    client: httpx.AsyncClient, body: dict, param: str | None
) -> None:
    resp = await client.post("/invocations", json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_invocations_with_a_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/invocations", content=b"{", headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["error"]["message"]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_ping_is_200_while_the_engine_is_alive(client: httpx.AsyncClient, method: str) -> None:
    resp = await client.request(method, "/ping")
    assert resp.status_code == 200
