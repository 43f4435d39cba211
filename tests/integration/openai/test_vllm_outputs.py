"""vLLM's output extensions on the real engine: echo with logprobs (max_tokens 0 included, as
lm-evaluation-harness scores), prompt_logprobs, return_token_ids, continuous usage stats, cached
prompt tokens, and chat's echo / continue_final_message.

Logprobs from two engine routes (prefill vs decode) differ in bf16's last bits: compared with a
tolerance, never exactly."""

from __future__ import annotations

import math
import uuid

import httpx
import pytest

from tests.helpers import chat, stream_events

CONTEXT = "The quick brown fox jumps over the lazy dog. Then the fox"
TOLERANCE = 0.05  # nats; prefill and decode kernels round bf16 differently


async def post(client: httpx.AsyncClient, path: str, body: dict) -> dict:
    resp = await client.post(path, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def tokenize(client: httpx.AsyncClient, text: str) -> list[int]:
    ids = (
        await post(client, "/v1/completions", {"prompt": text, "max_tokens": 1, "return_token_ids": True})
    )["choices"][0]["prompt_token_ids"]
    assert isinstance(ids, list)
    return ids


def harness_body(prompt: object) -> dict:
    """Exactly what lm-evaluation-harness's local-completions sends to score loglikelihoods."""
    return {
        "model": "tiny-mixtral",
        "prompt": prompt,
        "max_tokens": 0,
        "temperature": 0,
        "logprobs": 1,
        "echo": True,
    }


def assert_prompt_columns(choice: dict, prompt_len: int) -> None:
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"])
    assert len(lp["tokens"]) == prompt_len
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    for value, top in zip(lp["token_logprobs"][1:], lp["top_logprobs"][1:], strict=True):
        assert math.isfinite(value) and value <= 0.0
        assert 1 <= len(top) <= 2  # the prompt's token and the top 1
        assert max(top.values()) >= value - 1e-6
    offsets = lp["text_offset"]
    assert offsets == sorted(offsets) and offsets[0] == 0 and offsets[-1] <= len(choice["text"])


async def test_harness_loglikelihood_request_scores_the_prompt_and_matches_greedy_decoding(
    client: httpx.AsyncClient,
) -> None:
    context_ids = await tokenize(client, CONTEXT)
    greedy = await post(
        client,
        "/v1/completions",
        {
            "prompt": context_ids,
            "max_tokens": 4,
            "temperature": 0,
            "logprobs": 0,
            "return_token_ids": True,
            "ignore_eos": True,
        },
    )
    continuation = greedy["choices"][0]["token_ids"]
    decoded_logprobs = greedy["choices"][0]["logprobs"]["token_logprobs"]
    assert len(continuation) == 4

    body = await post(client, "/v1/completions", harness_body(context_ids + continuation))
    choice = body["choices"][0]
    assert_prompt_columns(choice, len(context_ids) + 4)
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 0
    assert body["usage"]["prompt_tokens"] == len(context_ids) + 4
    # The continuation scored as prompt = the same tokens' logprobs when the engine generated them.
    scored = choice["logprobs"]["token_logprobs"][len(context_ids) :]
    assert sum(scored) == pytest.approx(sum(decoded_logprobs), abs=TOLERANCE * 4)
    for a, b in zip(scored, decoded_logprobs, strict=True):
        assert a == pytest.approx(b, abs=TOLERANCE)


async def test_harness_request_with_text_and_batched_prompts(client: httpx.AsyncClient) -> None:
    full = CONTEXT + " ran away"
    ids = await tokenize(client, full)
    by_text = (await post(client, "/v1/completions", harness_body(full)))["choices"][0]
    assert by_text["text"] == full
    assert_prompt_columns(by_text, len(ids))
    # A token's text at its offset (SentencePiece's space before the first word is not in the text).
    lp = by_text["logprobs"]
    for token, offset in zip(lp["tokens"][2:], lp["text_offset"][2:], strict=True):
        assert full[offset:].startswith(token)

    short = len(await tokenize(client, CONTEXT))
    assert ids[:short] == await tokenize(client, CONTEXT)
    by_ids = await post(client, "/v1/completions", harness_body([ids, ids[:short]]))
    by_texts = await post(client, "/v1/completions", harness_body([full, CONTEXT]))
    choices = by_ids["choices"] + by_texts["choices"]
    assert [c["index"] for c in choices] == [0, 1, 0, 1]
    for choice, length in zip(choices, [len(ids), short, len(ids), short], strict=True):
        assert_prompt_columns(choice, length)
    assert by_texts["choices"][1]["text"] == CONTEXT
    # The ids and the text are one prompt; a shorter prompt scores its positions alike.
    expected = lp["token_logprobs"][1:]
    for choice in choices:
        got = choice["logprobs"]["token_logprobs"][1:]
        assert got == pytest.approx(expected[: len(got)], abs=TOLERANCE)


async def test_echo_with_logprobs_puts_the_prompt_columns_before_the_completion(
    client: httpx.AsyncClient,
) -> None:
    ids = await tokenize(client, CONTEXT)
    body = await post(
        client,
        "/v1/completions",
        {
            "prompt": CONTEXT,
            "max_tokens": 3,
            "temperature": 0,
            "logprobs": 2,
            "echo": True,
            "ignore_eos": True,
        },
    )
    choice = body["choices"][0]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(ids) + 3
    assert lp["token_logprobs"][0] is None and all(v is not None for v in lp["token_logprobs"][1:])
    assert choice["text"].startswith(CONTEXT)
    assert lp["text_offset"][len(ids)] == len(CONTEXT)  # the completion starts where the echo ends
    assert len(choice["prompt_logprobs"]) == len(ids)  # vLLM also sends them as prompt_logprobs

    events = await stream_events(
        client,
        "/v1/completions",
        {
            "prompt": CONTEXT,
            "max_tokens": 3,
            "temperature": 0,
            "logprobs": 2,
            "echo": True,
            "ignore_eos": True,
            "stream": True,
        },
    )
    first = events[0]["choices"][0]
    assert first["text"].startswith(CONTEXT)
    assert first["logprobs"]["token_logprobs"][0] is None
    streamed = [v for e in events for v in e["choices"][0]["logprobs"]["token_logprobs"]]
    assert streamed[1:] == pytest.approx(lp["token_logprobs"][1:], abs=TOLERANCE)


async def test_max_tokens_zero_without_echo_is_a_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/completions", json={"prompt": "x", "max_tokens": 0})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "max_tokens"


async def test_prompt_logprobs_in_vllm_shape_on_both_endpoints(client: httpx.AsyncClient) -> None:
    ids = await tokenize(client, CONTEXT)
    body = await post(client, "/v1/completions", {"prompt": CONTEXT, "max_tokens": 2, "prompt_logprobs": 3})
    plp = body["choices"][0]["prompt_logprobs"]
    assert len(plp) == len(ids) and plp[0] is None
    for token_id, position in zip(ids[1:], plp[1:], strict=True):
        assert str(token_id) in position and 3 <= len(position) <= 4
        assert {"logprob", "rank", "decoded_token"} == set(position[str(token_id)])
        assert position[str(token_id)]["rank"] >= 1
    assert "logprobs" in body["choices"][0] and body["choices"][0]["logprobs"] is None

    answer = await post(client, "/v1/chat/completions", chat("Hi there", max_tokens=2, prompt_logprobs=1))
    top = answer["prompt_logprobs"]
    assert len(top) == answer["usage"]["prompt_tokens"] and top[0] is None
    assert all(1 <= len(p) <= 2 for p in top[1:])
    assert "prompt_logprobs" not in answer["choices"][0]


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
async def test_prompt_logprobs_with_stream_is_a_400(client: httpx.AsyncClient, path: str) -> None:
    body = {"prompt": "x"} if path == "/v1/completions" else chat("x")
    resp = await client.post(path, json={**body, "stream": True, "prompt_logprobs": 1})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "prompt_logprobs"


async def test_return_token_ids_on_completions_whole_and_streamed(client: httpx.AsyncClient) -> None:
    body = {
        "prompt": CONTEXT,
        "max_tokens": 5,
        "temperature": 0,
        "ignore_eos": True,
        "return_token_ids": True,
    }
    whole = (await post(client, "/v1/completions", body))["choices"][0]
    assert whole["prompt_token_ids"] == await tokenize(client, CONTEXT)
    assert len(whole["token_ids"]) == 5

    events = await stream_events(client, "/v1/completions", {**body, "stream": True})
    choices = [e["choices"][0] for e in events]
    assert choices[0]["prompt_token_ids"] == whole["prompt_token_ids"]
    assert all("prompt_token_ids" not in c for c in choices[1:])
    assert [t for c in choices for t in c["token_ids"]] == whole["token_ids"]


async def test_return_token_ids_on_chat_whole_and_streamed(client: httpx.AsyncClient) -> None:
    body = chat("Name a colour.", max_tokens=5, temperature=0, ignore_eos=True, return_token_ids=True)
    whole = await post(client, "/v1/chat/completions", body)
    assert len(whole["prompt_token_ids"]) == whole["usage"]["prompt_tokens"]
    assert whole["prompt_token_ids"][-1] != 2  # [/INST], no EOS
    assert len(whole["choices"][0]["token_ids"]) == 5

    events = await stream_events(client, "/v1/chat/completions", {**body, "stream": True})
    assert events[0]["prompt_token_ids"] == whole["prompt_token_ids"]  # on the role chunk
    streamed = [t for e in events[1:] for c in e["choices"] for t in c.get("token_ids", [])]
    assert streamed == whole["choices"][0]["token_ids"]


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
async def test_continuous_usage_stats_put_usage_on_every_chunk(client: httpx.AsyncClient, path: str) -> None:
    base = {"prompt": CONTEXT} if path == "/v1/completions" else chat(CONTEXT)
    options = {"include_usage": True, "continuous_usage_stats": True}
    events = await stream_events(
        client, path, {**base, "max_tokens": 4, "ignore_eos": True, "stream": True, "stream_options": options}
    )
    with_choices = [e for e in events if e["choices"]]
    assert with_choices and all("usage" in e for e in with_choices)
    counts = [e["usage"]["completion_tokens"] for e in with_choices]
    assert counts == sorted(counts) and counts[-1] == 4
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 4
    prompt = events[-1]["usage"]["prompt_tokens"]
    assert all(e["usage"]["prompt_tokens"] == prompt for e in events)

    plain = await stream_events(
        client, path, {**base, "max_tokens": 2, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert all("usage" not in e for e in plain if e["choices"])


async def test_a_repeated_long_prompt_reports_cached_tokens(client: httpx.AsyncClient) -> None:
    words = " ".join(uuid.uuid4().hex for _ in range(15))  # ~450 tokens, new to the prefix cache
    body = {"prompt": words, "max_tokens": 1}
    first = (await post(client, "/v1/completions", body))["usage"]
    second = (await post(client, "/v1/completions", body))["usage"]
    assert first["prompt_tokens_details"] == {"cached_tokens": 0}
    assert 0 < second["prompt_tokens_details"]["cached_tokens"] <= second["prompt_tokens"]

    events = await stream_events(
        client,
        "/v1/chat/completions",
        {**chat(words), "max_tokens": 1, "stream": True, "stream_options": {"include_usage": True}},
    )
    again = await stream_events(
        client,
        "/v1/chat/completions",
        {**chat(words), "max_tokens": 1, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert "prompt_tokens_details" in events[-1]["usage"]
    assert again[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] > 0


async def test_continue_final_message_continues_the_assistant_text_without_eos(
    client: httpx.AsyncClient,
) -> None:
    messages = [
        {"role": "user", "content": "Tell me a story."},
        {"role": "assistant", "content": "Once upon a"},
    ]
    body = {
        "messages": messages,
        "max_tokens": 4,
        "temperature": 0,
        "ignore_eos": True,
        "continue_final_message": True,
        "add_generation_prompt": False,
        "return_token_ids": True,
    }
    answer = await post(client, "/v1/chat/completions", body)
    prompt = answer["prompt_token_ids"]
    partial = (await tokenize(client, "Once upon a"))[1:]
    assert prompt[-len(partial) :] == partial and 2 not in prompt  # open: no EOS after the partial text
    # The same ids as a completion prompt give the same greedy continuation.
    completion = await post(
        client,
        "/v1/completions",
        {"prompt": prompt, "max_tokens": 4, "temperature": 0, "ignore_eos": True, "return_token_ids": True},
    )
    assert answer["choices"][0]["token_ids"] == completion["choices"][0]["token_ids"]

    echoed = await post(client, "/v1/chat/completions", {**body, "echo": True})
    assert (
        echoed["choices"][0]["message"]["content"]
        == "Once upon a" + answer["choices"][0]["message"]["content"]
    )
    events = await stream_events(client, "/v1/chat/completions", {**body, "echo": True, "stream": True})
    assert events[1]["choices"][0]["delta"] == {"content": "Once upon a"}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"add_generation_prompt": False}, "add_generation_prompt"),
        ({"continue_final_message": True, "add_generation_prompt": True}, "continue_final_message"),
    ],
)
async def test_generation_prompt_options_the_inst_format_cannot_honour_are_400(
    client: httpx.AsyncClient, extra: dict, param: str
) -> None:
    resp = await client.post("/v1/chat/completions", json=chat("hi", **extra))
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == param


async def test_continue_final_message_needs_an_assistant_message_last(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json=chat("hi", continue_final_message=True))
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "messages[0].role"


async def test_vllm_fields_not_asked_for_are_null_not_absent(client: httpx.AsyncClient) -> None:
    """vLLM sends them as null; with the openai SDK an absent extra field is an AttributeError, so
    `completion.choices[0].prompt_logprobs is None` (as vLLM's own tests write it) would raise."""
    completion = await post(client, "/v1/completions", {"prompt": "Hi", "max_tokens": 2})
    [choice] = completion["choices"]
    for field in ("prompt_logprobs", "prompt_token_ids", "token_ids"):
        assert field in choice and choice[field] is None
    answer = await post(client, "/v1/chat/completions", chat("Hi", max_tokens=2))
    assert "prompt_logprobs" in answer and answer["prompt_logprobs"] is None
    assert "prompt_token_ids" in answer and answer["prompt_token_ids"] is None
    assert "token_ids" in answer["choices"][0] and answer["choices"][0]["token_ids"] is None
