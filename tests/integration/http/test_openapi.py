"""The published schema refuses what the server refuses: each body below is judged by the running
server's /openapi.json (a JSON Schema validator) and by the server itself, and the two must agree.
The cases are the rules that live in validators, routes, flags and the model rather than in a
field's type: before they were written into the schema, the refused ones were valid by it."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from server.engine.base import Engine
from tests.app_client import app_client

CHAT = [{"role": "user", "content": "Hi"}]
CHEAP = {"max_tokens": 1}
MAX_N = 3  # below the model's own bound (16), so that the flag's bound is what is checked


def _request_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return {**body, "components": document["components"]}


def cases(vocab: int) -> list[tuple[str, dict[str, Any], bool]]:
    """(path, body, whether the server takes it)."""
    return [
        ("/tokenize", {}, False),
        ("/tokenize", {"prompt": "hi"}, True),
        ("/tokenize", {"prompt": None, "messages": CHAT}, True),
        ("/tokenize", {"prompt": "hi", "messages": CHAT}, False),
        ("/tokenize", {"messages": CHAT * 5}, False),  # --max-messages 4
        ("/detokenize", {"tokens": [vocab - 1]}, True),
        ("/detokenize", {"tokens": [vocab]}, False),
        ("/v1/completions", {"prompt": [vocab], **CHEAP}, False),
        ("/v1/completions", {"prompt": "x", "best_of": 2, **CHEAP}, False),
        ("/v1/completions", {"prompt": "x", "best_of": 1, **CHEAP}, True),
        ("/v1/completions", {"prompt": "x", "n": 2, "best_of": 2, **CHEAP}, True),
        ("/v1/completions", {"prompt": "x", "n": MAX_N + 1, **CHEAP}, False),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0, "echo": True}, True),
        ("/v1/completions", {"prompt": "", "add_special_tokens": False, **CHEAP}, False),  # no tokens
        ("/v1/completions", {"prompt": "", **CHEAP}, True),  # BOS alone
        ("/v1/completions", {"prompt": "x", "max_tokens": 5000}, False),  # past the context
        ("/v1/completions", {"prompt": ["x"] * 65, **CHEAP}, False),
        ("/v1/completions", {"prompt": "x", "stop": "", **CHEAP}, False),
        ("/v1/completions", {"prompt": "x", "stop_token_ids": [vocab], **CHEAP}, False),
        ("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}, **CHEAP}, False),
        ("/v1/completions", {"prompt": "x", "stream": True, "prompt_logprobs": 1, **CHEAP}, False),
        ("/v1/completions", {"prompt": "x", "priority": 1, **CHEAP}, False),  # first come, first served
        ("/v1/chat/completions", {"messages": CHAT, "top_logprobs": 2, **CHEAP}, False),
        ("/v1/chat/completions", {"messages": CHAT, "top_logprobs": 2, "logprobs": True, **CHEAP}, True),
        ("/v1/chat/completions", {"messages": CHAT, "top_logprobs": None, **CHEAP}, True),
        (
            "/v1/chat/completions",
            {"messages": CHAT, "continue_final_message": True, "add_generation_prompt": True, **CHEAP},
            False,
        ),
        ("/v1/chat/completions", {"messages": CHAT, "max_completion_tokens": 1, "max_tokens": 10**6}, True),
        ("/v1/chat/completions/batch", {"messages": [CHAT], "n": 2, **CHEAP}, False),
    ]


# What the schema cannot say: valid by it, refused by the server. Each is said in a description.
GAPS = [
    # JSON Schema cannot compare two fields, and one branch per value costs more than schemathesis
    # models (server/openai/schemas/common.py, LenientModel): best_of == n, max_tokens 0 with echo.
    ("/v1/completions", {"prompt": "x", "n": 2, "best_of": 3, **CHEAP}),
    ("/v1/completions", {"prompt": "x", "max_tokens": 0}),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 5000}),
    (
        "/v1/chat/completions",
        {
            "messages": CHAT,
            "structured_outputs": {"regex": "a"},
            "response_format": {"type": "json_object"},
            **CHEAP,
        },
    ),
    # JSON Schema has one number type: 3.0 is an integer to it, not to the prompt's token lists.
    ("/v1/completions", {"prompt": [3.0], **CHEAP}),
    # The order of roles is the chat template's rule.
    ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "x"}], **CHEAP}),
]


async def test_the_published_schema_and_the_server_judge_bodies_alike(engine: Engine) -> None:
    vocab = engine.model_card.vocab_size
    async with app_client(engine, max_n=MAX_N, max_messages=4) as client:
        document = (await client.get("/openapi.json")).json()
        disagreements = []
        for path, body, taken in cases(vocab):
            valid = jsonschema.Draft202012Validator(_request_schema(document, path)).is_valid(body)
            response = await client.post(path, json=body)
            assert response.status_code in (200, 400), (path, body, response.text)
            if (valid, response.status_code == 200) != (taken, taken):
                disagreements.append((path, body, valid, response.status_code))
        for path, body in GAPS:
            valid = jsonschema.Draft202012Validator(_request_schema(document, path)).is_valid(body)
            response = await client.post(path, json=body)
            if (valid, response.status_code) != (True, 400):
                disagreements.append((path, body, valid, response.status_code))
    assert not disagreements


async def test_token_ids_are_bounded_by_the_vocabulary_once_the_engine_runs(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    tokens = schemas["DetokenizeRequest"]["properties"]["tokens"]["items"]
    assert (tokens["minimum"], tokens["maximum"]) == (0, engine.model_card.vocab_size - 1)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_a_stream_is_the_event_stream_the_schema_declares(client: httpx.AsyncClient, path: str) -> None:
    document = (await client.get("/openapi.json")).json()
    declared = document["paths"][path]["post"]["responses"]["200"]["content"]
    assert set(declared) == {"application/json", "text/event-stream"}
    body = {"messages": CHAT} if "chat" in path else {"prompt": "x"}
    streamed = await client.post(path, json={**body, **CHEAP, "stream": True})
    assert streamed.headers["content-type"].split(";")[0] in declared
    assert streamed.text.endswith("data: [DONE]\n\n")
