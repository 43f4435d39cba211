"""Bad input on the real app gets OpenAI-shaped 400/404 errors, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TEST_MAX_MODEL_LEN
from tests.helpers import chat


def assert_openai_error(
    resp: httpx.Response, status: int, *, code: str | None = None, param: str | None = None
) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if code is not None:
        assert body["error"]["code"] == code
    if param is not None:
        assert body["error"]["param"] == param
    message: str = body["error"]["message"]
    assert message
    return message


async def test_context_length_exceeded_names_both_numbers(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json=chat("Hello there", max_tokens=TEST_MAX_MODEL_LEN))
    message = assert_openai_error(resp, 400, code="context_length_exceeded", param="max_tokens")
    assert str(TEST_MAX_MODEL_LEN) in message
    assert str(TEST_MAX_MODEL_LEN + 10) in message  # prompt (10) + completion


async def test_prompt_longer_than_context_is_rejected_before_the_engine(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/completions", json={"prompt": [1] * (TEST_MAX_MODEL_LEN + 5), "max_tokens": 1}
    )
    message = assert_openai_error(resp, 400, code="context_length_exceeded", param="prompt")
    assert str(TEST_MAX_MODEL_LEN + 5) in message
    resp = await client.post("/v1/completions", json={"prompt": [1] * (TEST_MAX_MODEL_LEN + 5)})
    assert_openai_error(resp, 400, code="context_length_exceeded", param="prompt")


async def test_chat_prompt_longer_than_context_names_messages(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json=chat("x " * TEST_MAX_MODEL_LEN, max_tokens=1))
    assert_openai_error(resp, 400, code="context_length_exceeded", param="messages")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_stream_options_without_stream_is_400(client: httpx.AsyncClient, path: str) -> None:
    base = chat("x", max_tokens=1) if "chat" in path else {"prompt": "x", "max_tokens": 1}
    for extra in ({}, {"stream": False}):
        resp = await client.post(path, json={**base, **extra, "stream_options": {"include_usage": True}})
        assert_openai_error(resp, 400, param="stream_options")
    resp = await client.post(path, json={**base, "stream": False, "stream_options": None})
    assert resp.status_code == 200, resp.text


async def test_validation_params_name_the_field_not_pydantics_union_member(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/completions", json={"prompt": [5, -1]})
    message = assert_openai_error(resp, 400, param="prompt.1")
    assert "str" not in message.split(":")[0]
    resp = await client.post("/v1/chat/completions", json=chat("x", logit_bias={"a": 1, "7": 1, "b": 500}))
    message = assert_openai_error(resp, 400, param="logit_bias.a")
    assert "logit_bias.b" in message


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json=chat("x", model="gpt-4o"))
    assert_openai_error(resp, 404, code="model_not_found", param="model")
    resp = await client.get("/v1/models/gpt-4o")
    assert_openai_error(resp, 404, code="model_not_found")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
            "messages[1].role",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "messages[1].role",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]},
            "messages[1].role",
        ),
        ({"messages": [{"role": "tool", "content": "a"}]}, None),
        ({"messages": []}, "messages"),
        (chat("x", temperature=-1), "temperature"),
        (chat("x", top_p=1.5), "top_p"),
        (chat("x", n=0), "n"),
        (chat("x", max_tokens=0), "max_tokens"),
        (chat("x", logit_bias={"40000": 5}), "logit_bias"),
        (chat("x", stream_options={"include_usage": False}), "stream_options"),
        (chat("x", top_logprobs=50, logprobs=True), "top_logprobs"),
        (chat("x", min_tokens=9, max_tokens=3), "min_tokens"),
        (chat("x", stop=[""]), "stop"),
        (chat("x", response_format={"type": "xml"}), None),
    ],
)
async def test_invalid_chat_requests_are_400(
    client: httpx.AsyncClient, body: dict, param: str | None
) -> None:
    resp = await client.post("/v1/chat/completions", json=body)
    assert_openai_error(resp, 400, param=param)


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": ["a", [1, 2]]},
        {"prompt": []},
        {"prompt": [40000]},
        {"prompt": "x", "logprobs": 21},
        {"prompt": "x", "suffix": "y"},
        {"prompt": "x", "best_of": 3},
    ],
)
async def test_invalid_completion_requests_are_400(client: httpx.AsyncClient, body: dict) -> None:
    resp = await client.post("/v1/completions", json=body)
    assert_openai_error(resp, 400)


async def test_malformed_json_and_wrong_types_are_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_openai_error(resp, 400)
    resp = await client.post("/v1/chat/completions", json={"messages": "hello"})
    assert_openai_error(resp, 400, param="messages")


async def test_unknown_route_and_method_are_openai_shaped(client: httpx.AsyncClient) -> None:
    assert_openai_error(await client.get("/v1/nothing-here"), 404)
    assert_openai_error(await client.get("/v1/chat/completions"), 405)
