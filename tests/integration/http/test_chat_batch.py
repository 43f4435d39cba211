"""vLLM's POST /v1/chat/completions/batch on the real engine: each conversation gets its own choice,
index i for conversation i, in one whole answer that conforms to OpenAI's chat completion shape."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conformance.openai_spec import assert_conforms
from tests.helpers import chat
from tests.integration.test_errors import assert_openai_error

BATCH = "/v1/chat/completions/batch"
CONVERSATIONS = [
    [{"role": "user", "content": "Hello there"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me about Mixtral and its experts"},
    ],
]
# The batch runs its conversations side by side in the engine, a single request alone: bf16 kernels
# may round those differently, so logprobs are compared with a tolerance.
TOLERANCE = 0.05


async def first_token_logprobs(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[Any]:
    resp = await client.post(path, json={**body, "max_tokens": 1, "logprobs": True, "top_logprobs": 3})
    assert resp.status_code == 200, resp.text
    return [c["logprobs"]["content"][0] for c in resp.json()["choices"]]


async def test_each_conversation_gets_its_own_choice(client: httpx.AsyncClient) -> None:
    resp = await client.post(BATCH, json={"messages": CONVERSATIONS, "max_tokens": 5, "ignore_eos": True})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert_conforms("chat_completion", body)
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert all(c["finish_reason"] == "length" for c in body["choices"])
    counts = [(await client.post("/tokenize", json={"messages": m})).json()["count"] for m in CONVERSATIONS]
    assert body["usage"]["prompt_tokens"] == sum(counts)
    assert body["usage"]["completion_tokens"] == 10


async def test_choice_i_answers_conversation_i(client: httpx.AsyncClient) -> None:
    batched = await first_token_logprobs(client, BATCH, {"messages": CONVERSATIONS, "temperature": 0})
    for conversation, entry in zip(CONVERSATIONS, batched, strict=True):
        [alone] = await first_token_logprobs(
            client, "/v1/chat/completions", {"messages": conversation, "temperature": 0}
        )
        mine = {t["token"]: t["logprob"] for t in entry["top_logprobs"]}
        theirs = {t["token"]: t["logprob"] for t in alone["top_logprobs"]}
        shared = mine.keys() & theirs.keys()
        assert len(shared) >= 2, (mine, theirs)  # the same candidates lead, in each conversation
        for token in shared:
            assert mine[token] == pytest.approx(theirs[token], abs=TOLERANCE)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"stream": True}, "stream"),
        ({"n": 2}, "n"),
        ({"echo": True}, "echo"),
        ({"prompt_logprobs": 0}, "prompt_logprobs"),
    ],
)
async def test_what_a_batch_cannot_answer_is_a_400_naming_it(
    client: httpx.AsyncClient, extra: dict[str, Any], param: str
) -> None:
    resp = await client.post(BATCH, json={"messages": CONVERSATIONS, "max_tokens": 2, **extra})
    assert_openai_error(resp, 400, param=param)


async def test_a_single_conversation_is_not_a_batch(client: httpx.AsyncClient) -> None:
    resp = await client.post(BATCH, json=chat("Hello", max_tokens=2))
    assert_openai_error(resp, 400, param="messages.0")


async def test_cached_tokens_count_every_conversations_prefix_hits(client: httpx.AsyncClient) -> None:
    """usage.prompt_tokens sums the conversations, and so does cached_tokens: a batch of the same
    conversation twice, after that conversation has filled the prefix cache, hits it twice."""
    salt = uuid.uuid4().hex  # a prefix cache of this test's own
    conversation = [{"role": "user", "content": " ".join(f"word{i}" for i in range(150))}]
    body = {"max_tokens": 1, "cache_salt": salt}
    warm = await client.post("/v1/chat/completions", json={**body, "messages": conversation})
    assert warm.status_code == 200, warm.text
    single = await client.post("/v1/chat/completions", json={**body, "messages": conversation})
    hits = single.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert hits > 0
    batch = await client.post(BATCH, json={**body, "messages": [conversation, conversation]})
    assert batch.status_code == 200, batch.text
    usage = batch.json()["usage"]
    assert usage["prompt_tokens"] == 2 * single.json()["usage"]["prompt_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2 * hits
