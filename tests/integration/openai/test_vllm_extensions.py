"""vLLM's extension request fields on the real engine: each honoured field changes the output the way
`vllm serve` does, and each refused one is a 400 naming it. Greedy (temperature 0) and short."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from server.engine.base import Engine, GenerateRequest, SamplingOptions
from server.prompt.tokenizer import Tokenizer
from tests.conftest import TEST_MAX_MODEL_LEN
from tests.helpers import chat, stream_events
from tests.integration.test_errors import assert_openai_error

PROMPT = "The capital of France is"
EOS = 2


@pytest.fixture(scope="module")
def tokenizer(engine: Engine) -> Tokenizer:
    return Tokenizer.load(engine.model_card.root)


async def complete(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/completions", json={"temperature": 0, **body})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def greedy_ids(engine: Engine, prompt: list[int], max_tokens: int) -> list[int]:
    """The engine's own greedy token ids for `prompt`, to pick tokens the API must then act on."""
    options = SamplingOptions(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    ids: list[int] = []
    async for delta in engine.generate(GenerateRequest("ext-greedy", prompt, options)):
        ids += delta.token_ids
    return ids


# --- stop_token_ids, include_stop_str_in_output ------------------------------------------------


async def test_stop_token_ids_end_the_completion_at_that_token(
    client: httpx.AsyncClient, engine: Engine, tokenizer: Tokenizer
) -> None:
    prompt = tokenizer.encode(PROMPT)
    greedy = await greedy_ids(engine, prompt, 8)
    stop = greedy[2]
    body = await complete(
        client, {"prompt": prompt, "max_tokens": 8, "ignore_eos": True, "stop_token_ids": [stop]}
    )
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["stop_reason"] == stop  # vLLM's: which stop token ended it
    assert body["usage"]["completion_tokens"] == greedy.index(stop) + 1


@pytest.mark.parametrize("field", ["stop_token_ids", "allowed_token_ids"])
async def test_token_ids_past_the_vocabulary_are_400_naming_the_field(
    client: httpx.AsyncClient, field: str
) -> None:
    resp = await client.post("/v1/completions", json={"prompt": PROMPT, field: [5, 32000]})
    message = assert_openai_error(resp, 400, param=field)
    assert "32000" in message


async def test_include_stop_str_in_output_keeps_the_stop_string(client: httpx.AsyncClient) -> None:
    base = await complete(client, {"prompt": PROMPT, "max_tokens": 16, "ignore_eos": True})
    text = base["choices"][0]["text"]
    stop = next(
        text[i : i + 3] for i in range(2, len(text) - 3) if text[i : i + 3].strip() == text[i : i + 3]
    )
    cut = text.index(stop)
    for include, expected in ((False, text[:cut]), (True, text[: cut + len(stop)])):
        body = await complete(
            client,
            {
                "prompt": PROMPT,
                "max_tokens": 16,
                "ignore_eos": True,
                "stop": [stop],
                "include_stop_str_in_output": include,
            },
        )
        assert body["choices"][0]["text"] == expected
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["choices"][0]["stop_reason"] == stop


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
async def test_a_streams_last_chunk_names_the_stop_token_that_ended_it(
    client: httpx.AsyncClient, path: str
) -> None:
    body = {"prompt": PROMPT} if path == "/v1/completions" else chat(PROMPT)
    body |= {"max_tokens": 8, "ignore_eos": True, "temperature": 0}
    whole = await client.post(path, json={**body, "return_token_ids": True})
    assert whole.status_code == 200, whole.text
    stop = whole.json()["choices"][0]["token_ids"][1]  # a token the greedy answer makes
    events = await stream_events(client, path, {**body, "stream": True, "stop_token_ids": [stop]})
    choices = [c for e in events for c in e["choices"]]
    assert choices[-1]["finish_reason"] == "stop" and choices[-1]["stop_reason"] == stop
    assert all("stop_reason" not in c for c in choices[:-1])


async def test_stop_reason_is_null_without_a_matched_stop(client: httpx.AsyncClient) -> None:
    whole = await complete(client, {"prompt": PROMPT, "max_tokens": 3, "ignore_eos": True})
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["choices"][0]["stop_reason"] is None
    resp = await client.post(
        "/v1/chat/completions", json=chat("Say something", max_tokens=6, temperature=0, stop=["zzzz"])
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["stop_reason"] is None


# --- skip_special_tokens, spaces_between_special_tokens -------------------------------------------


async def eos_text(client: httpx.AsyncClient, **extra: Any) -> str:
    """Three EOS tokens (biased in, EOS ignored) decoded as the request asks."""
    body = {"prompt": PROMPT, "max_tokens": 3, "ignore_eos": True, "logit_bias": {str(EOS): 100}, **extra}
    result = await complete(client, body)
    assert result["usage"]["completion_tokens"] == 3
    return str(result["choices"][0]["text"])


async def test_special_tokens_show_only_when_not_skipped(client: httpx.AsyncClient) -> None:
    assert await eos_text(client) == ""
    shown = await eos_text(client, skip_special_tokens=False)
    assert shown.count("</s>") == 3


# --- allowed_token_ids, bad_words ----------------------------------------------------------------


async def test_allowed_token_ids_restrict_every_output_token(
    client: httpx.AsyncClient, tokenizer: Tokenizer
) -> None:
    words = ["cat", "dog"]
    allowed = [tokenizer.encode_segment(w)[0] for w in words]
    assert all(len(tokenizer.encode_segment(w)) == 1 for w in words)
    base = await complete(client, {"prompt": PROMPT, "max_tokens": 8})
    assert set(base["choices"][0]["text"].split()) - set(words)  # the noise model writes other words
    body = await complete(client, {"prompt": PROMPT, "max_tokens": 8, "allowed_token_ids": allowed})
    text = body["choices"][0]["text"]
    assert body["usage"]["completion_tokens"] == 8
    assert text.split() and set(text.split()) <= set(words), text


async def test_bad_words_never_appear_where_greedy_writes_them(
    client: httpx.AsyncClient, engine: Engine, tokenizer: Tokenizer
) -> None:
    prompt = tokenizer.encode(PROMPT)
    greedy = await greedy_ids(engine, prompt, 16)
    base = await complete(client, {"prompt": prompt, "max_tokens": 16, "ignore_eos": True})
    # A whole word the model writes as one token: vLLM's semantics then forbid that token outright.
    word = next(
        piece
        for piece, token in ((tokenizer.decode([t]), t) for t in greedy)
        if piece.isalpha()
        and len(piece) >= 3
        and tokenizer.encode_segment(piece) == [token]
        and re.search(rf"\b{piece}\b", base["choices"][0]["text"])
    )
    body = await complete(
        client, {"prompt": prompt, "max_tokens": 16, "ignore_eos": True, "bad_words": [word]}
    )
    assert not re.search(rf"\b{word}\b", body["choices"][0]["text"]), body["choices"][0]["text"]


# --- truncate_prompt_tokens, add_special_tokens --------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right", None])
async def test_truncate_prompt_tokens_keeps_the_requested_end(
    client: httpx.AsyncClient, tokenizer: Tokenizer, side: str | None
) -> None:
    prompt = tokenizer.encode("One two three four five six seven eight nine ten")
    kept = prompt[:4] if side == "right" else prompt[-4:]
    extra = {"truncation_side": side} if side else {}
    body = await complete(client, {"prompt": prompt, "max_tokens": 4, "truncate_prompt_tokens": 4, **extra})
    same = await complete(client, {"prompt": kept, "max_tokens": 4})
    assert body["usage"]["prompt_tokens"] == 4
    assert body["choices"][0]["text"] == same["choices"][0]["text"]


async def test_echo_repeats_the_kept_part_of_a_truncated_prompt(
    client: httpx.AsyncClient, tokenizer: Tokenizer
) -> None:
    text = "One two three four five six seven eight nine ten"
    kept = tokenizer.decode(tokenizer.encode(text)[-3:])
    body = await complete(
        client, {"prompt": text, "max_tokens": 2, "truncate_prompt_tokens": 3, "echo": True}
    )
    assert kept.strip() == "eight nine ten"
    assert body["choices"][0]["text"].startswith(kept)
    assert not body["choices"][0]["text"].startswith("One")


async def test_truncate_prompt_tokens_minus_one_fits_a_long_prompt_to_the_context(
    client: httpx.AsyncClient,
) -> None:
    body = await complete(
        client,
        {"prompt": [1] + [1014] * (TEST_MAX_MODEL_LEN + 5), "max_tokens": 1, "truncate_prompt_tokens": -1},
    )
    assert body["usage"]["prompt_tokens"] == TEST_MAX_MODEL_LEN - 1


async def test_truncating_to_more_than_the_context_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", json=chat("hi", truncate_prompt_tokens=TEST_MAX_MODEL_LEN + 1)
    )
    assert_openai_error(resp, 400, param="truncate_prompt_tokens")


async def test_chat_truncation_counts_the_rendered_prompt(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", json=chat("a long question " * 10, max_tokens=1, truncate_prompt_tokens=5)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["prompt_tokens"] == 5


async def test_add_special_tokens_adds_or_drops_the_bos(
    client: httpx.AsyncClient, tokenizer: Tokenizer
) -> None:
    with_bos = len(tokenizer.encode(PROMPT))
    off = await complete(client, {"prompt": PROMPT, "max_tokens": 1, "add_special_tokens": False})
    assert off["usage"]["prompt_tokens"] == with_bos - 1
    plain = await client.post("/v1/chat/completions", json=chat("hi", max_tokens=1))
    doubled = await client.post(
        "/v1/chat/completions", json=chat("hi", max_tokens=1, add_special_tokens=True)
    )
    assert doubled.json()["usage"]["prompt_tokens"] == plain.json()["usage"]["prompt_tokens"] + 1


# --- structured_outputs ------------------------------------------------------------------------


async def structured(client: httpx.AsyncClient, spec: dict[str, Any], stream: bool = False) -> str:
    body = chat("Answer.", max_tokens=40, temperature=0, structured_outputs=spec)
    if stream:
        events = await stream_events(client, "/v1/chat/completions", {**body, "stream": True})
        return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    [choice] = resp.json()["choices"]
    assert choice["finish_reason"] == "stop", choice
    return str(choice["message"]["content"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_structured_regex_is_matched(client: httpx.AsyncClient, stream: bool) -> None:
    pattern = "[a-z]{3,6}-[0-9]{2}"
    assert re.fullmatch(pattern, await structured(client, {"regex": pattern}, stream))


async def test_structured_choice_is_one_of_the_choices(client: httpx.AsyncClient) -> None:
    choices = ["alpha", "beta", "gamma"]
    assert await structured(client, {"choice": choices}) in choices


async def test_structured_grammar_is_followed(client: httpx.AsyncClient) -> None:
    grammar = 'root ::= "yes" | "no" | "maybe " digit\ndigit ::= [0-9]'
    assert re.fullmatch(r"yes|no|maybe [0-9]", await structured(client, {"grammar": grammar}))


async def test_structured_json_schema_as_a_string(client: httpx.AsyncClient) -> None:
    schema = '{"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}'
    text = await structured(client, {"json": schema})
    assert re.fullmatch(r'\{"ok":(true|false)\}', text)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("spec", [{"regex": "(unclosed"}, {"grammar": "root ::= undefined_rule"}])
async def test_a_constraint_the_engine_cannot_compile_is_400_before_any_output(
    client: httpx.AsyncClient, spec: dict[str, Any], stream: bool
) -> None:
    body = chat("x", max_tokens=4, structured_outputs=spec, stream=stream)
    resp = await client.post("/v1/chat/completions", json=body)
    assert_openai_error(resp, 400, param="structured_outputs")


async def test_structured_outputs_with_a_response_format_is_400(client: httpx.AsyncClient) -> None:
    body = chat("x", structured_outputs={"regex": "a"}, response_format={"type": "json_object"})
    resp = await client.post("/v1/chat/completions", json=body)
    assert_openai_error(resp, 400, param="structured_outputs")


# --- request_id, priority ----------------------------------------------------------------------


async def test_request_id_names_the_response(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json=chat("hi", max_tokens=1, request_id="abc-123"))
    assert resp.json()["id"] == "chatcmpl-abc-123"
    events = await stream_events(
        client, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2, "stream": True, "request_id": "r9"}
    )
    assert {e["id"] for e in events} == {"cmpl-r9"}


async def test_priority_without_the_priority_policy_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 1, "priority": -1})
    message = assert_openai_error(resp, 400, param="priority")
    assert "--scheduling-policy priority" in message
    ok = await client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 1, "priority": 0})
    assert ok.status_code == 200, ok.text


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/v1/chat/completions", "use_beam_search", True),
        ("/v1/chat/completions", "functions", [{"name": "f"}]),
        ("/v1/chat/completions", "function_call", "auto"),
        ("/v1/chat/completions", "chat_template", "{{ messages }}"),
        ("/v1/chat/completions", "reasoning_effort", "high"),
        ("/v1/completions", "length_penalty", 0.5),
        ("/v1/completions", "suffix", "end"),
        ("/v1/completions", "guided_json", {"type": "object"}),
        ("/v1/completions", "vllm_xargs", {"k": 1}),
        ("/v1/completions", "stream_interval", 4),
    ],
)
async def test_a_field_asking_for_what_is_not_provided_is_400_naming_it(
    client: httpx.AsyncClient, path: str, field: str, value: Any
) -> None:
    base = chat("hi", max_tokens=1) if "chat" in path else {"prompt": PROMPT, "max_tokens": 1}
    resp = await client.post(path, json={**base, field: value})
    assert_openai_error(resp, 400, param=field)


NEUTRAL = {
    "use_beam_search": False,
    "length_penalty": 1.0,
    "watermarking": None,
    "logprob_token_ids": [],
    "thinking_token_budget": -1,
    "repetition_detection": {"max_pattern_size": 0},
    "vllm_xargs": {},
    "kv_transfer_params": None,
    "return_tokens_as_token_ids": False,
    "routed_experts_prompt_start": 0,
    "stream_interval": 1,
    "session_id": "s1",
    "return_token_offsets": True,
    "priority": 0,
}


async def test_neutral_values_of_every_refused_field_are_accepted(client: httpx.AsyncClient) -> None:
    chat_only = {
        "tools": None,
        "tool_choice": "none",
        "parallel_tool_calls": False,
        "documents": [],
        "chat_template_kwargs": {},
        "reasoning_effort": "none",
        "include_reasoning": False,
    }
    resp = await client.post("/v1/chat/completions", json=chat("hi", max_tokens=1, **NEUTRAL, **chat_only))
    assert resp.status_code == 200, resp.text
    body = {"prompt": PROMPT, "max_tokens": 1, "suffix": "", "prompt_embeds": None, **NEUTRAL}
    assert (await client.post("/v1/completions", json=body)).status_code == 200
