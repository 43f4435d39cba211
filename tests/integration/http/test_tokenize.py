"""POST /tokenize and /detokenize on the real engine: the counts are the prompt_tokens the
generating routes report, and the routes sit behind the API key like /v1."""

from __future__ import annotations

import httpx
import pytest

from server.engine.base import Engine
from tests.app_client import app_client

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Grüße! What is a mixture of experts?"},
    {"role": "assistant", "content": "Several MLPs; a router picks two."},
    {"role": "user", "content": "Why two?"},
]


async def test_tokenize_prompt_count_is_the_completions_prompt_tokens(client: httpx.AsyncClient) -> None:
    prompt = "The capital of France is"
    tokens = (await client.post("/tokenize", json={"prompt": prompt})).json()
    body = (await client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 1})).json()
    assert tokens["count"] == len(tokens["tokens"]) == body["usage"]["prompt_tokens"]
    assert tokens["tokens"][0] == 1  # BOS, as completions put it
    assert tokens["max_model_len"] == 1024


async def test_tokenize_messages_count_is_the_chat_prompt_tokens(client: httpx.AsyncClient) -> None:
    tokens = (await client.post("/tokenize", json={"messages": MESSAGES})).json()
    body = (await client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 1})).json()
    assert tokens["count"] == body["usage"]["prompt_tokens"]


async def test_tokenize_without_special_tokens_leaves_out_bos(client: httpx.AsyncClient) -> None:
    with_bos = (await client.post("/tokenize", json={"prompt": "hello"})).json()["tokens"]
    without = (await client.post("/tokenize", json={"prompt": "hello", "add_special_tokens": False})).json()
    assert [1, *without["tokens"]] == with_bos


async def test_tokenize_returns_token_strings_only_when_asked(client: httpx.AsyncClient) -> None:
    plain = (await client.post("/tokenize", json={"prompt": "Hello world"})).json()
    assert plain["token_strs"] is None  # null, as vLLM answers, so clients can read the attribute
    asked = (await client.post("/tokenize", json={"prompt": "Hello world", "return_token_strs": True})).json()
    assert asked["tokens"] == plain["tokens"]
    assert asked["token_strs"] == ["<s>", "\u2581Hello", "\u2581world"]


async def test_detokenize_gives_back_the_text_tokenize_took(client: httpx.AsyncClient) -> None:
    text = "Grüße aus München, 東京 and emoji 🙂"
    tokens = (await client.post("/tokenize", json={"prompt": text})).json()["tokens"]
    resp = await client.post("/detokenize", json={"tokens": tokens})
    assert resp.status_code == 200
    assert resp.json() == {"prompt": text}


async def test_tokenize_messages_follow_the_chat_rules(client: httpx.AsyncClient) -> None:
    resp = await client.post("/tokenize", json={"messages": [{"role": "assistant", "content": "x"}]})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "messages[0].role"


@pytest.mark.parametrize(
    "body",
    [{}, {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}],
    ids=["neither", "both"],
)
async def test_tokenize_takes_exactly_one_of_prompt_or_messages(
    client: httpx.AsyncClient, body: dict
) -> None:
    resp = await client.post("/tokenize", json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


async def test_detokenize_refuses_ids_past_the_vocabulary(client: httpx.AsyncClient) -> None:
    resp = await client.post("/detokenize", json={"tokens": [1, 32000]})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "tokens"


async def test_tokenize_for_another_model_is_a_404(client: httpx.AsyncClient) -> None:
    resp = await client.post("/tokenize", json={"model": "gpt-4", "prompt": "x"})
    assert resp.status_code == 404


async def test_tokenize_and_detokenize_need_the_api_key_when_keys_are_set(engine: Engine) -> None:
    async with app_client(engine, api_keys=["sk-tok"]) as http:
        assert (await http.post("/tokenize", json={"prompt": "x"})).status_code == 401
        assert (await http.post("/detokenize", json={"tokens": [1]})).status_code == 401
        headers = {"Authorization": "Bearer sk-tok"}
        assert (await http.post("/tokenize", json={"prompt": "x"}, headers=headers)).status_code == 200
        assert (await http.post("/detokenize", json={"tokens": [1]}, headers=headers)).status_code == 200
