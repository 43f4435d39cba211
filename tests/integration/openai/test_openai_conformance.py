"""Every body, stream event and error of /v1/chat/completions and /v1/completions conforms to OpenAI's
published spec (tests/conformance/openai_schemas), across the request shapes clients send."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conformance.openai_spec import Kind, assert_conforms
from tests.conftest import TEST_MAX_MODEL_LEN
from tests.helpers import chat, stream_events

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"

CHAT_SHAPES: dict[str, dict[str, Any]] = {
    "plain": chat("Hello there", max_tokens=4, temperature=0),
    "n_and_logprobs": chat("Hi", n=2, max_tokens=3, logprobs=True, top_logprobs=2, seed=1),
    "logprobs_no_top": chat("Hi", max_tokens=3, logprobs=True),
    "stop": chat("Count: one two three", max_tokens=8, stop=["e", "o"], temperature=0),
    "developer_and_history": {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "日本語で"}]},
        ],
        "max_tokens": 4,
    },
}
COMPLETION_SHAPES: dict[str, dict[str, Any]] = {
    "plain": {"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0},
    "list_prompts_n": {"prompt": ["a", "b"], "n": 2, "max_tokens": 3, "seed": 3},
    "token_ids": {"prompt": [[1, 22557], [1, 1526]], "max_tokens": 2},
    "echo": {"prompt": "Once upon", "echo": True, "max_tokens": 3},
    "logprobs": {"prompt": "Hello", "max_tokens": 4, "logprobs": 2, "temperature": 0},
    "logprobs_zero_stop": {"prompt": "Hello", "max_tokens": 6, "logprobs": 0, "stop": [" "]},
}


async def post_ok(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(path, json=body)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def check_both_ways(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], whole: Kind, chunk: Kind
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The whole answer and every stream event (with a usage event) conform; one fingerprint."""
    answer = await post_ok(client, path, body)
    assert_conforms(whole, answer)
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    events = await stream_events(client, path, streamed)
    for event in events:
        assert_conforms(chunk, event)
    assert {e["system_fingerprint"] for e in events} == {answer["system_fingerprint"]}
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 0
    return answer, events


@pytest.mark.parametrize("shape", CHAT_SHAPES)
async def test_chat_answers_and_stream_events_conform(client: httpx.AsyncClient, shape: str) -> None:
    answer, events = await check_both_ways(
        client, CHAT, CHAT_SHAPES[shape], "chat_completion", "chat_completion_chunk"
    )
    body = CHAT_SHAPES[shape]
    assert len(answer["choices"]) == body.get("n", 1)
    if body.get("logprobs"):
        assert all(c["logprobs"]["refusal"] is None for c in answer["choices"])
    finished = [c for e in events for c in e["choices"] if c["finish_reason"] is not None]
    assert sorted(c["index"] for c in finished) == list(range(body.get("n", 1)))


@pytest.mark.parametrize("shape", COMPLETION_SHAPES)
async def test_completion_answers_and_stream_events_conform(client: httpx.AsyncClient, shape: str) -> None:
    answer, events = await check_both_ways(
        client, COMPLETIONS, COMPLETION_SHAPES[shape], "completion", "completion_chunk"
    )
    finished = [c for e in events for c in e["choices"] if c["finish_reason"] is not None]
    assert sorted(c["index"] for c in finished) == [c["index"] for c in answer["choices"]]


async def test_max_tokens_hit_and_stream_without_usage_conform(client: httpx.AsyncClient) -> None:
    for path, body, kind in (
        (CHAT, chat("Hi", max_tokens=2, ignore_eos=True, stream=True), "chat_completion_chunk"),
        (
            COMPLETIONS,
            {"prompt": "Hi", "max_tokens": 2, "ignore_eos": True, "stream": True},
            "completion_chunk",
        ),
    ):
        events = await stream_events(client, path, body)
        for event in events:
            assert_conforms(kind, event)  # type: ignore[arg-type]
        assert events[-1]["choices"][0]["finish_reason"] == "length"


async def test_system_fingerprint_is_one_string_for_both_endpoints(client: httpx.AsyncClient) -> None:
    a = await post_ok(client, CHAT, chat("Hi", max_tokens=1))
    b = await post_ok(client, COMPLETIONS, {"prompt": "Hi", "max_tokens": 1})
    assert a["system_fingerprint"] == b["system_fingerprint"]
    assert a["system_fingerprint"].startswith("fp_")


ERROR_CASES: list[tuple[str, dict[str, Any], int, str | None]] = [
    (CHAT, chat("x", temperature="hot"), 400, "temperature"),
    (CHAT, chat("x", model="gpt-4o"), 404, "model"),
    (CHAT, chat("x", max_tokens=TEST_MAX_MODEL_LEN), 400, "max_tokens"),
    (CHAT, chat("x", logit_bias={"abc": 1, "99999999": 1}), 400, None),
    (CHAT, chat("x", stream_options={"include_usage": True}), 400, "stream_options"),
    (COMPLETIONS, {"prompt": 5}, 400, "prompt"),
    (COMPLETIONS, {"prompt": [1] * (TEST_MAX_MODEL_LEN + 1)}, 400, "prompt"),
    (COMPLETIONS, {"prompt": "x", "logit_bias": {"40000": 1}}, 400, "logit_bias"),
    (COMPLETIONS, {"prompt": "x", "model": "nope"}, 404, "model"),
]


@pytest.mark.parametrize(("path", "body", "status", "param"), ERROR_CASES)
async def test_errors_conform(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int, param: str | None
) -> None:
    # Refused before any stream starts: the same JSON error with stream true (but stream_options
    # is the error only without it).
    for streamed in (False, True) if "stream_options" not in body else (False,):
        resp = await client.post(path, json={**body, "stream": streamed} if streamed else body)
        assert resp.status_code == status, resp.text
        assert_conforms("error", resp.json())
        if param is not None:
            assert resp.json()["error"]["param"] == param
