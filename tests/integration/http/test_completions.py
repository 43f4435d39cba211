"""POST /v1/completions on the real engine: every prompt shape, echo, logprobs, streaming."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import assert_usage, stream_events


def reference_ids(text: str) -> list[int]:
    """BOS + Mistral's own SentencePiece encoding: what a text prompt must become."""
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    ids: list[int] = MistralTokenizer.v1().instruct_tokenizer.tokenizer.encode(text, bos=True, eos=False)
    return ids


async def complete(client: httpx.AsyncClient, body: dict) -> dict:
    resp = await client.post("/v1/completions", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_string_prompt_gets_bos_and_default_16_tokens(client: httpx.AsyncClient) -> None:
    body = await complete(client, {"prompt": "The capital of France is", "temperature": 0})
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "length"
    # 16 tokens is OpenAI's default max_tokens for legacy completions.
    prompt = len(reference_ids("The capital of France is"))
    assert_usage(body["usage"], prompt, 16)


async def test_token_id_prompt_equals_same_text_prompt(client: httpx.AsyncClient) -> None:
    text = await complete(client, {"prompt": "Hello world", "max_tokens": 8, "temperature": 0})
    prompt_ids = reference_ids("Hello world")
    ids = await complete(client, {"prompt": prompt_ids, "max_tokens": 8, "temperature": 0})
    assert ids["usage"]["prompt_tokens"] == text["usage"]["prompt_tokens"] == len(prompt_ids)
    assert ids["choices"][0]["text"] == text["choices"][0]["text"]


async def test_several_prompts_times_n_are_numbered_prompt_major(client: httpx.AsyncClient) -> None:
    body = await complete(
        client, {"prompt": ["Hello world", "Goodbye"], "n": 2, "max_tokens": 5, "temperature": 0}
    )
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    texts = [c["text"] for c in body["choices"]]
    assert texts[0] == texts[1]  # greedy: both samples of one prompt agree
    assert texts[0] != texts[2]
    single = await complete(client, {"prompt": "Goodbye", "max_tokens": 5, "temperature": 0})
    assert texts[2] == single["choices"][0]["text"]
    assert body["usage"]["completion_tokens"] == 20


async def test_list_of_token_id_prompts(client: httpx.AsyncClient) -> None:
    body = await complete(client, {"prompt": [[1, 22557], [1, 1526, 1526]], "max_tokens": 2})
    assert len(body["choices"]) == 2
    assert body["usage"]["prompt_tokens"] == 5


async def test_echo_puts_the_prompt_before_the_completion(client: httpx.AsyncClient) -> None:
    plain = await complete(client, {"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0})
    echoed = await complete(
        client, {"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0, "echo": True}
    )
    assert echoed["choices"][0]["text"] == "Once upon a time" + plain["choices"][0]["text"]


async def test_logprobs_columns_line_up(client: httpx.AsyncClient) -> None:
    body = await complete(client, {"prompt": "Hello", "max_tokens": 5, "temperature": 0, "logprobs": 2})
    lp = body["choices"][0]["logprobs"]
    assert (
        len(lp["tokens"])
        == len(lp["token_logprobs"])
        == len(lp["top_logprobs"])
        == len(lp["text_offset"])
        == 5
    )
    assert all(len(top) <= 2 for top in lp["top_logprobs"])
    assert lp["text_offset"] == sorted(lp["text_offset"])
    for token, logprob, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], strict=True):
        assert top[token] == pytest.approx(logprob)  # greedy: the chosen token is among the best


async def test_logprob_tokens_add_up_to_the_text_and_offsets_point_into_it(client: httpx.AsyncClient) -> None:
    """Tokens keep SentencePiece's leading space, so `text_offset` does not drift a character per word."""
    for prompt in ("Once upon a time", "日本語で答えて"):
        body = await complete(
            client, {"prompt": prompt, "max_tokens": 16, "temperature": 0, "logprobs": 1, "ignore_eos": True}
        )
        text = body["choices"][0]["text"]
        lp = body["choices"][0]["logprobs"]
        assert "".join(lp["tokens"]) == text
        for token, offset in zip(lp["tokens"], lp["text_offset"], strict=True):
            assert text[offset : offset + len(token)] == token


async def test_logprobs_zero_gives_the_sampled_token_in_top_logprobs(client: httpx.AsyncClient) -> None:
    """As OpenAI and vLLM answer: top_logprobs holds the sampled token plus the N best."""
    body = await complete(client, {"prompt": "Hello", "max_tokens": 4, "logprobs": 0, "seed": 5})
    lp = body["choices"][0]["logprobs"]
    assert lp["top_logprobs"] == [{t: v} for t, v in zip(lp["tokens"], lp["token_logprobs"], strict=True)]
    sampled = await complete(client, {"prompt": "Hello", "max_tokens": 4, "logprobs": 1, "temperature": 2})
    lp = sampled["choices"][0]["logprobs"]
    for token, top in zip(lp["tokens"], lp["top_logprobs"], strict=True):
        assert token in top and 1 <= len(top) <= 2


async def test_null_max_tokens_is_the_default_16(client: httpx.AsyncClient) -> None:
    body = await complete(client, {"prompt": "Hello", "max_tokens": None, "ignore_eos": True})
    assert body["usage"]["completion_tokens"] == 16
    assert body["choices"][0]["finish_reason"] == "length"


async def test_stream_text_matches_non_stream_and_ends_with_usage(client: httpx.AsyncClient) -> None:
    req = {"prompt": "Hello world", "max_tokens": 9, "temperature": 0}
    whole = await complete(client, req)
    events = await stream_events(
        client, "/v1/completions", {**req, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert all(e["object"] == "text_completion" for e in events)
    text_events = [e for e in events if e["choices"]]
    assert "".join(e["choices"][0]["text"] for e in text_events) == whole["choices"][0]["text"]
    assert text_events[-1]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"] == whole["usage"]


async def test_stream_of_several_choices_carries_each_index(client: httpx.AsyncClient) -> None:
    events = await stream_events(
        client, "/v1/completions", {"prompt": ["a", "b"], "n": 2, "max_tokens": 4, "stream": True}
    )
    finished = sorted(e["choices"][0]["index"] for e in events if e["choices"][0].get("finish_reason"))
    assert finished == [0, 1, 2, 3]
