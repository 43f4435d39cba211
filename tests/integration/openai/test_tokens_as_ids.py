"""vLLM's `return_tokens_as_token_ids` on the real engine: logprob tokens named "token_id:<id>"."""

from __future__ import annotations

import httpx

from tests.helpers import chat, stream_events

PROMPT = "Hello, world! How are you today?"


def ids_of(names: list[str]) -> list[int]:
    assert all(name.startswith("token_id:") for name in names), names
    return [int(name.removeprefix("token_id:")) for name in names]


async def post(client: httpx.AsyncClient, path: str, body: dict) -> dict:
    resp = await client.post(path, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_completion_logprob_tokens_are_the_ids_and_the_text_is_unchanged(
    client: httpx.AsyncClient,
) -> None:
    base = {"prompt": PROMPT, "max_tokens": 8, "temperature": 0, "logprobs": 2, "return_token_ids": True}
    plain = await post(client, "/v1/completions", base)
    named = await post(client, "/v1/completions", {**base, "return_tokens_as_token_ids": True})
    [choice] = named["choices"]
    assert choice["text"] == plain["choices"][0]["text"]
    columns = choice["logprobs"]
    assert ids_of(columns["tokens"]) == choice["token_ids"]
    for top in columns["top_logprobs"]:
        ids_of(list(top))
    # Offsets count the names, as vLLM counts them.
    lengths = [len(t) for t in columns["tokens"]]
    assert columns["text_offset"] == [sum(lengths[:i]) for i in range(len(lengths))]


async def test_echoed_prompt_and_completion_are_named_by_id(client: httpx.AsyncClient) -> None:
    body = {
        "prompt": PROMPT,
        "max_tokens": 5,
        "temperature": 0,
        "echo": True,
        "logprobs": 1,
        "return_token_ids": True,
        "return_tokens_as_token_ids": True,
    }
    [choice] = (await post(client, "/v1/completions", body))["choices"]
    assert ids_of(choice["logprobs"]["tokens"]) == choice["prompt_token_ids"] + choice["token_ids"]
    assert choice["text"].startswith(PROMPT)


async def test_streamed_completion_names_each_chunks_tokens_by_id(client: httpx.AsyncClient) -> None:
    body = {
        "prompt": PROMPT,
        "max_tokens": 8,
        "temperature": 0,
        "logprobs": 1,
        "stream": True,
        "return_token_ids": True,
        "return_tokens_as_token_ids": True,
    }
    events = await stream_events(client, "/v1/completions", body)
    names = [t for e in events for c in e["choices"] if c["logprobs"] for t in c["logprobs"]["tokens"]]
    token_ids = [t for e in events for c in e["choices"] for t in c.get("token_ids") or []]
    assert ids_of(names) == token_ids and len(token_ids) == 8


async def test_chat_logprobs_are_named_by_id_with_the_names_bytes(client: httpx.AsyncClient) -> None:
    base = chat("Hi", max_tokens=6, temperature=0, logprobs=True, top_logprobs=2, return_token_ids=True)
    plain = await post(client, "/v1/chat/completions", base)
    named = await post(client, "/v1/chat/completions", {**base, "return_tokens_as_token_ids": True})
    [choice] = named["choices"]
    assert choice["message"] == plain["choices"][0]["message"]
    entries = choice["logprobs"]["content"]
    assert ids_of([e["token"] for e in entries]) == choice["token_ids"]
    for e in entries:
        assert e["bytes"] == list(e["token"].encode())
        ids_of([t["token"] for t in e["top_logprobs"]])
    streamed = await stream_events(
        client, "/v1/chat/completions", {**base, "stream": True, "return_tokens_as_token_ids": True}
    )
    names = [
        e["token"]
        for ev in streamed
        for c in ev["choices"]
        if c["logprobs"]
        for e in c["logprobs"]["content"]
    ]
    assert ids_of(names) == choice["token_ids"]


async def test_false_keeps_the_token_texts(client: httpx.AsyncClient) -> None:
    body = {
        "prompt": PROMPT,
        "max_tokens": 4,
        "temperature": 0,
        "logprobs": 0,
        "return_tokens_as_token_ids": False,
    }
    tokens = (await post(client, "/v1/completions", body))["choices"][0]["logprobs"]["tokens"]
    assert not any(t.startswith("token_id:") for t in tokens)
