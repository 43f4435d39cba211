"""POST /v1/chat/completions on the real engine (tiny Mixtral): shapes, sampling, streaming."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import assert_usage, chat, stream_events

EOS = 2


def reference_prompt_tokens(messages: list[tuple[str, str]]) -> int:
    """Prompt length by Mistral's own encoder, the reference for the [INST] format."""
    from mistral_common.protocol.instruct.messages import SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    kinds = {"system": SystemMessage, "user": UserMessage}
    request = ChatCompletionRequest(messages=[kinds[role](content=text) for role, text in messages])
    return len(MistralTokenizer.v1().encode_chat_completion(request).tokens)


async def complete(client: httpx.AsyncClient, body: dict) -> dict:
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_chat_completion_has_openai_shape_and_usage(client: httpx.AsyncClient) -> None:
    body = await complete(client, chat("Hello there", max_tokens=7, temperature=0))
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "tiny-mixtral"
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    assert choice["finish_reason"] == "length"
    prompt = reference_prompt_tokens([("user", "Hello there")])
    assert_usage(body["usage"], prompt, 7)


async def test_greedy_output_is_deterministic(client: httpx.AsyncClient) -> None:
    a = await complete(client, chat("Tell me a story", max_tokens=16, temperature=0))
    b = await complete(client, chat("Tell me a story", max_tokens=16, temperature=0))
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]


async def test_same_seed_gives_same_text_and_other_seed_differs(client: httpx.AsyncClient) -> None:
    def req(seed: int) -> dict:
        return chat("Tell me a story", max_tokens=24, temperature=1.0, seed=seed)

    a = await complete(client, req(1234))
    b = await complete(client, req(1234))
    c = await complete(client, req(999))
    text = a["choices"][0]["message"]["content"]
    assert text == b["choices"][0]["message"]["content"]
    assert text != c["choices"][0]["message"]["content"]


async def test_negative_seeds_are_accepted_and_reproducible_as_in_vllm(client: httpx.AsyncClient) -> None:
    """vLLM takes any 64-bit seed; a client that sends a negative one must not get a 400."""

    def req(seed: int) -> dict:
        return chat("Tell me a story", max_tokens=24, temperature=1.0, seed=seed)

    a = await complete(client, req(-(2**63)))
    b = await complete(client, req(-(2**63)))
    c = await complete(client, req(-7))
    text = a["choices"][0]["message"]["content"]
    assert text == b["choices"][0]["message"]["content"]
    assert text != c["choices"][0]["message"]["content"]


async def test_top_k_1_and_tiny_top_p_equal_greedy(client: httpx.AsyncClient) -> None:
    greedy = await complete(client, chat("Count with me", max_tokens=12, temperature=0))
    top_k = await complete(client, chat("Count with me", max_tokens=12, temperature=1.0, top_k=1, seed=5))
    top_p = await complete(client, chat("Count with me", max_tokens=12, temperature=1.0, top_p=1e-6, seed=6))
    min_p = await complete(client, chat("Count with me", max_tokens=12, temperature=1.0, min_p=1.0, seed=7))
    expected = greedy["choices"][0]["message"]["content"]
    assert top_k["choices"][0]["message"]["content"] == expected
    assert top_p["choices"][0]["message"]["content"] == expected
    assert min_p["choices"][0]["message"]["content"] == expected


async def test_repetition_penalties_change_greedy_output(client: httpx.AsyncClient) -> None:
    # The tiny model's greedy text repeats words; every penalty must change it.
    base = await complete(client, chat("Hello!", max_tokens=24, temperature=0))
    text = base["choices"][0]["message"]["content"]
    for penalty in ({"repetition_penalty": 1.9}, {"presence_penalty": 2.0}, {"frequency_penalty": 2.0}):
        other = await complete(client, chat("Hello!", max_tokens=24, temperature=0, **penalty))
        assert other["choices"][0]["message"]["content"] != text, penalty


async def test_logit_bias_min_tokens_and_ignore_eos(client: httpx.AsyncClient) -> None:
    eos_bias = {"logit_bias": {str(EOS): 100}, "temperature": 0, "max_tokens": 10}
    stops_at_once = await complete(client, chat("Hi", **eos_bias))
    assert stops_at_once["choices"][0]["finish_reason"] == "stop"
    assert stops_at_once["usage"]["completion_tokens"] <= 1

    at_least_five = await complete(client, chat("Hi", min_tokens=5, **eos_bias))
    assert at_least_five["choices"][0]["finish_reason"] == "stop"
    assert at_least_five["usage"]["completion_tokens"] in (5, 6)

    runs_on = await complete(client, chat("Hi", ignore_eos=True, **eos_bias))
    assert runs_on["choices"][0]["finish_reason"] == "length"
    assert runs_on["usage"]["completion_tokens"] == 10


async def test_stop_string_ends_generation_before_it(client: httpx.AsyncClient) -> None:
    full = await complete(client, chat("Hello!", max_tokens=30, temperature=0))
    text = full["choices"][0]["message"]["content"]
    words = text.split()
    assert len(words) > 3, text
    stop = words[2]
    stopped = await complete(
        client, chat("Hello!", max_tokens=30, temperature=0, stop=[stop, "never-seen-xyz"])
    )
    choice = stopped["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert stop not in choice["message"]["content"]
    assert text.startswith(choice["message"]["content"])


async def test_n_choices_are_indexed_and_seeded(client: httpx.AsyncClient) -> None:
    body = await complete(client, chat("Pick a word", n=3, max_tokens=8, temperature=1.0, seed=42))
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    texts = [c["message"]["content"] for c in body["choices"]]
    assert len(set(texts)) > 1
    assert body["usage"]["completion_tokens"] == 24
    again = await complete(client, chat("Pick a word", n=3, max_tokens=8, temperature=1.0, seed=42))
    assert [c["message"]["content"] for c in again["choices"]] == texts


async def test_logprobs_and_top_logprobs(client: httpx.AsyncClient) -> None:
    body = await complete(client, chat("Hi", max_tokens=4, temperature=0, logprobs=True, top_logprobs=3))
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == 4
    for entry in content:
        assert entry["logprob"] <= 0
        assert len(entry["top_logprobs"]) == 3
        # Greedy: the chosen token is the most likely one.
        assert entry["logprob"] == pytest.approx(entry["top_logprobs"][0]["logprob"])
    assert "".join(e["token"] for e in content) == body["choices"][0]["message"]["content"]


NON_ASCII_PROMPTS = ["日本語で答えて", "Ünïcödé ☕ 😀 Привет", "中文 한국어 ελληνικά"]


async def test_logprob_tokens_and_bytes_add_up_to_the_content(client: httpx.AsyncClient) -> None:
    """Each token is the text it adds, leading space included (" nervous", not "nervous"); a
    character split over byte tokens comes whole with its last byte, and `bytes` are each token's
    own UTF-8 bytes, so they add up to the content's."""
    contents: list[str] = []
    for prompt in NON_ASCII_PROMPTS:
        body = await complete(
            client, chat(prompt, max_tokens=24, temperature=0, logprobs=True, top_logprobs=2, ignore_eos=True)
        )
        text = body["choices"][0]["message"]["content"]
        entries = body["choices"][0]["logprobs"]["content"]
        assert "".join(e["token"] for e in entries) == text
        assert bytes(b for e in entries for b in e["bytes"]) == text.encode()
        contents.append(text)
    assert any(" " in t[1:] for t in contents)  # words after the first keep their space
    assert any(not t.isascii() for t in contents), contents


async def test_system_message_is_accepted(client: httpx.AsyncClient) -> None:
    body = await complete(
        client,
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello there"},
            ],
            "max_tokens": 2,
        },
    )
    expected = reference_prompt_tokens([("system", "Be brief."), ("user", "Hello there")])
    assert expected > reference_prompt_tokens([("user", "Hello there")])
    assert body["usage"]["prompt_tokens"] == expected


async def test_developer_message_is_a_system_message(client: httpx.AsyncClient) -> None:
    """OpenAI's newer name for the system role; the prompt is the same as with "system"."""
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    as_system = await complete(client, {"messages": messages, "max_tokens": 1})
    messages[0]["role"] = "developer"
    as_developer = await complete(client, {"messages": messages, "max_tokens": 1})
    assert as_developer["usage"]["prompt_tokens"] == as_system["usage"]["prompt_tokens"]


async def test_stream_chunks_role_first_then_content_then_finish_usage_done(
    client: httpx.AsyncClient,
) -> None:
    body = chat(
        "Hello there", max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    events = await stream_events(client, "/v1/chat/completions", body)
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert len({e["id"] for e in events}) == 1
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content_chunks = [e for e in events[1:] if e["choices"]]
    assert all("role" not in e["choices"][0]["delta"] for e in content_chunks)
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]] == [None] * (
        len(content_chunks)
    ) + ["length"]
    usage = events[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 12
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in content_chunks)
    whole = await complete(client, chat("Hello there", max_tokens=12, temperature=0))
    assert streamed == whole["choices"][0]["message"]["content"]


async def test_stream_without_usage_has_no_usage_chunk(client: httpx.AsyncClient) -> None:
    events = await stream_events(client, "/v1/chat/completions", chat("Hi", max_tokens=3, stream=True))
    assert all(e["choices"] for e in events)
    assert all("usage" not in e for e in events)


async def test_stream_never_splits_a_utf8_character(client: httpx.AsyncClient) -> None:
    # "é" is two byte-fallback tokens, <0xC3> <0xA9> (byte b is token b + 3). Greedy decoding with
    # these biases and a frequency penalty alternates C3, A9, C3, ...: every character arrives in
    # two tokens, and a chunk may only carry it once both bytes are in.
    c3, a9 = 0xC3 + 3, 0xA9 + 3
    body = chat(
        "Café",
        max_tokens=10,
        temperature=0,
        frequency_penalty=2.0,
        logit_bias={str(c3): 100, str(a9): 99},
    )
    whole = (await complete(client, body))["choices"][0]["message"]["content"]
    assert whole == "é" * 5
    events = await stream_events(client, "/v1/chat/completions", {**body, "stream": True})
    chunks = [e["choices"][0]["delta"].get("content", "") for e in events[1:]]
    assert "".join(chunks) == whole
    assert "\ufffd" not in "".join(chunks)
    assert all(set(chunk) <= {"é"} for chunk in chunks)
