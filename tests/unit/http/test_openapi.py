"""The published OpenAPI schema documents what the routes answer (tests/fuzz checks it at large)."""

from __future__ import annotations

import copy
from typing import Any

from server.app import create_app
from server.config import Settings
from server.engine.base import ModelCard
from server.http.openapi import bound_requests
from server.openai.schemas.common import TOKEN_ID_MARK


def test_get_model_documents_its_404_for_a_model_that_is_not_served() -> None:
    """GET /v1/models/not-served answers 404 with an OpenAI error; the schema said only 200/422."""
    operation = create_app().openapi()["paths"]["/v1/models/{model_id}"]["get"]
    assert operation["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


def request_schema(document: dict[str, Any], model: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][model]
    return schema


def test_flags_bound_what_the_routes_check_against_them() -> None:
    document = create_app(Settings(max_n=4, max_messages=9, max_tokens_limit=100)).openapi()
    for model in ("ChatCompletionRequest", "CompletionRequest"):
        props = request_schema(document, model)["properties"]
        assert props["n"]["maximum"] == 4
        assert props["priority"]["const"] == 0  # first come, first served: no priorities
    chat = request_schema(document, "ChatCompletionRequest")["properties"]
    assert chat["messages"]["maxItems"] == 9
    assert chat["max_completion_tokens"]["anyOf"][0]["maximum"] == 100
    assert (
        request_schema(document, "CompletionRequest")["properties"]["max_tokens"]["anyOf"][0]["maximum"]
        == 100
    )


def test_token_ids_are_marked_and_get_their_bound_only_from_a_model() -> None:
    document = create_app().openapi()
    tokens = request_schema(document, "DetokenizeRequest")["properties"]["tokens"]["items"]
    assert tokens[TOKEN_ID_MARK] is True and "maximum" not in tokens  # no engine yet: no vocabulary
    schemas = copy.deepcopy(document["components"]["schemas"])
    card = ModelCard("m", "/m", max_model_len=64, vocab_size=1000, engine_version="v", created=0)
    bound_requests(schemas, Settings(), card)
    assert schemas["DetokenizeRequest"]["properties"]["tokens"]["items"]["maximum"] == 999
    stop_ids = schemas["CompletionRequest"]["properties"]["stop_token_ids"]["anyOf"][0]["items"]
    assert stop_ids["maximum"] == 999
    assert schemas["CompletionRequest"]["properties"]["max_tokens"]["anyOf"][0]["maximum"] == 64


def test_the_generating_routes_declare_their_event_stream() -> None:
    paths = create_app().openapi()["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/invocations"):
        assert "text/event-stream" in paths[path]["post"]["responses"]["200"]["content"], path
    assert (
        "text/event-stream" not in paths["/v1/chat/completions/batch"]["post"]["responses"]["200"]["content"]
    )
