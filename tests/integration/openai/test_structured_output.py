"""response_format on the real engine: the tiny model writes noise, yet the grammar makes it JSON.

The noise model does not know when to stop a JSON string (any of 32,000 tokens may follow inside
one), so the json_object requests raise the odds of the closing tokens with logit_bias; the
grammar still decides which tokens are allowed at each step.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.helpers import chat, stream_events
from tests.integration.test_errors import assert_openai_error

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 10}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
# `"` and `}`, with and without the leading-space piece, in the Mistral v1 vocabulary.
CLOSERS = {"345": 8.0, "28739": 8.0, "443": 8.0, "28752": 8.0}


def json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}


def body_for(response_format: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return chat(
        "Reply in JSON.", **{"response_format": response_format, "max_tokens": 400, "temperature": 0, **extra}
    )


async def complete(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, str]:
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    [choice] = resp.json()["choices"]
    return choice["message"]["content"], choice["finish_reason"]


async def stream(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, str]:
    events = await stream_events(client, "/v1/chat/completions", {**body, "stream": True})
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    reasons = [e["choices"][0].get("finish_reason") for e in events if e["choices"]]
    return text, [r for r in reasons if r][-1]


@pytest.mark.parametrize("mode", [complete, stream], ids=["whole", "stream"])
async def test_json_object_output_parses_as_an_object(client: httpx.AsyncClient, mode: Any) -> None:
    text, reason = await mode(client, body_for({"type": "json_object"}, logit_bias=CLOSERS))
    assert reason == "stop"
    assert isinstance(json.loads(text), dict)


@pytest.mark.parametrize("mode", [complete, stream], ids=["whole", "stream"])
async def test_json_schema_output_parses_and_validates(client: httpx.AsyncClient, mode: Any) -> None:
    text, reason = await mode(client, body_for(json_schema_format(PERSON), logit_bias=CLOSERS))
    assert reason == "stop", text
    jsonschema.validate(json.loads(text), PERSON)


async def test_completions_take_response_format_too(client: httpx.AsyncClient) -> None:
    body = {
        "prompt": "A person as JSON:",
        "response_format": json_schema_format(PERSON),
        "logit_bias": CLOSERS,
        "max_tokens": 400,
        "temperature": 0,
    }
    resp = await client.post("/v1/completions", json=body)
    assert resp.status_code == 200, resp.text
    [choice] = resp.json()["choices"]
    assert choice["finish_reason"] == "stop", choice["text"]
    jsonschema.validate(json.loads(choice["text"]), PERSON)


async def test_json_schema_holds_for_sampled_noise(client: httpx.AsyncClient) -> None:
    """No bias, temperature 1: whatever the model samples, the grammar keeps it in the schema."""
    for seed in (1, 2):
        text, reason = await complete(
            client, body_for(json_schema_format(PERSON), temperature=1.0, seed=seed)
        )
        assert reason == "stop", text
        jsonschema.validate(json.loads(text), PERSON)


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_schema_the_engine_cannot_compile_is_400_before_any_output(
    client: httpx.AsyncClient, streamed: bool
) -> None:
    bad = json_schema_format({"type": "object", "properties": 5})
    resp = await client.post("/v1/chat/completions", json={**body_for(bad), "stream": streamed})
    message = assert_openai_error(resp, 400, param="response_format")
    assert "properties" in message


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "xml"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"name": "has space", "schema": {}}},
        json_schema_format(json.loads("[" * 40 + "]" * 40)),
        json_schema_format({"type": "object", "description": "x" * (70 << 10)}),
    ],
    ids=["unknown-type", "no-json_schema", "bad-name", "not-an-object", "too-large"],
)
async def test_malformed_response_format_is_400(
    client: httpx.AsyncClient, response_format: dict[str, Any]
) -> None:
    resp = await client.post("/v1/chat/completions", json=body_for(response_format))
    assert_openai_error(resp, 400)


async def test_too_deep_schema_is_400(client: httpx.AsyncClient) -> None:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(40):
        schema = {"type": "array", "items": schema}
    resp = await client.post("/v1/chat/completions", json=body_for(json_schema_format(schema)))
    message = assert_openai_error(resp, 400)
    assert "32 levels" in message


@pytest.mark.parametrize("streamed", [False, True])
async def test_logprobs_of_tokens_the_grammar_forbids_are_finite(
    client: httpx.AsyncClient, streamed: bool
) -> None:
    """The grammar masks tokens to -inf, which JSON cannot carry: they come as -9999.0, as from
    vLLM's own server."""
    body = {
        **body_for({"type": "json_object"}, max_tokens=3, logprobs=True, top_logprobs=5),
        "stream": streamed,
    }
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert "Infinity" not in resp.text and "-9999.0" in resp.text


@pytest.mark.parametrize(
    "schema",
    [
        {},
        {"anything": [1, {"x": None}]},
        {"properties": {"a": 5}},
        {"required": 5},
        {"enum": 5},
        {"enum": []},
        {"type": ["string", 5]},
        {"$ref": "#/nowhere"},
        {"items": "x", "type": "array"},
        {"type": "string", "pattern": "("},
        {"type": "string", "minLength": 10**9},
        {"type": "integer", "minimum": "a"},
        {"allOf": [{"type": "string"}, {"type": "integer"}]},
    ],
)
async def test_any_schema_is_served_or_refused_never_an_error_of_ours(
    client: httpx.AsyncClient, schema: dict[str, Any]
) -> None:
    """What a fuzzer or a careless client sends: a 200 or a 400, and the engine lives on."""
    for streamed in (False, True):
        body = {**body_for(json_schema_format(schema), max_tokens=2), "stream": streamed}
        resp = await client.post("/v1/chat/completions", json=body)
        assert resp.status_code in (200, 400), resp.text
        if streamed and resp.status_code == 200:
            assert "[DONE]" in resp.text and '"error"' not in resp.text, resp.text
    text, _ = await complete(client, body_for({"type": "text"}, max_tokens=2))
    assert text


async def test_text_format_is_plain_generation(client: httpx.AsyncClient) -> None:
    text, reason = await complete(client, {**body_for({"type": "text"}), "max_tokens": 5})
    assert reason == "length" and text


@pytest.mark.parametrize(
    "grammar",
    [
        {"response_format": {"type": "json_object"}},
        {"structured_outputs": {"choice": ["a"]}},
        {"structured_outputs": {"regex": "[0-9]+"}},
    ],
    ids=["json_object", "choice", "regex"],
)
async def test_allowed_token_ids_with_a_grammar_is_400_naming_it(
    client: httpx.AsyncClient, grammar: dict[str, Any]
) -> None:
    """The engine used to fail these after the response started (a 500): the grammar needed a
    token the list left out."""
    body = {"prompt": "x", "max_tokens": 2, "allowed_token_ids": [664], **grammar}
    resp = await client.post("/v1/completions", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "allowed_token_ids"
    alone = await client.post(
        "/v1/completions", json={"prompt": "x", "max_tokens": 2, "allowed_token_ids": [664]}
    )
    assert alone.status_code == 200, alone.text
    assert alone.json()["choices"][0]["text"]
