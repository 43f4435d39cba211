"""The published OpenAPI document.

What a route can answer besides success: each listed status with the OpenAI error body (the
statuses come from server/errors.py's table), and the event stream of the generating routes.

What a request may hold: the request models put their own rules in the schema (their
`SCHEMA_RULES` and `SchemaExtra` marks); the bounds that come from the server's flags and from the
model it serves are added here, when the document is built. Before the engine has started, the
vocabulary is not known and token ids are bounded below only; the document is built again, with the
bound, once it is.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from server.config import Settings
from server.engine.base import ModelCard
from server.http.deps import AppState
from server.openai.schemas.common import TOKEN_ID_MARK, ErrorResponse

Schema = dict[str, Any]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


# The generating routes: bad input, key, model, body size, admission, engine, deadlines (the
# request's own: 408; the server's: 504).
GENERATION_ERRORS = error_responses(400, 401, 404, 408, 413, 429, 503, 504)

EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The whole answer as JSON; with `stream: true`, server-sent events instead.",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "Lines `data: <chunk JSON>`, each event ended by a blank line, then "
                    "`data: [DONE]`. A chunk has the whole answer's shape, with `delta` in place of "
                    '`message` in chat. A failure after the first event is one `data: {"error": ...}` '
                    "event (the error body of the 4xx/5xx answers) before `[DONE]`. Lines starting with "
                    "`:` are keep-alive comments.",
                }
            }
        },
    }
}
# Chat, completions and /invocations: whole or streamed.
STREAMING_RESPONSES = {**GENERATION_ERRORS, **EVENT_STREAM}
# POST /v1/responses: OpenAI's semantic events instead of chunks; 404 also for a
# previous_response_id this key does not own.
RESPONSES_STREAMING: dict[int | str, dict[str, Any]] = {
    **GENERATION_ERRORS,
    200: {
        "description": "The Response object; with `stream: true`, its semantic events instead.",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "Events `event: <type>` + `data: <JSON with type and sequence_number>`: "
                    "response.created, response.in_progress, response.output_item.added, "
                    "response.content_part.added, response.output_text.delta (one per piece of text), "
                    "response.output_text.done, response.content_part.done, response.output_item.done, "
                    "then response.completed or response.incomplete. A failure after the start is an "
                    "`error` event and response.failed. No `[DONE]`. Lines starting with `:` are "
                    "keep-alive comments.",
                }
            }
        },
    },
}

GENERATING_REQUESTS = ("ChatCompletionRequest", "BatchChatCompletionRequest", "CompletionRequest")
CHAT_REQUESTS = ("ChatCompletionRequest", "BatchChatCompletionRequest")
MODEL_REQUESTS = (*GENERATING_REQUESTS, "ResponsesRequest", "TokenizeRequest", "DetokenizeRequest")


def install_openapi(app: FastAPI, shared: AppState) -> None:
    """`app.openapi` (and so /openapi.json) returns the document with the server's own bounds."""
    built: dict[tuple[ModelCard | None, tuple[str, ...] | None], Schema] = {}

    def openapi() -> Schema:
        key = _serving(shared)
        if key not in built:
            document = copy.deepcopy(FastAPI.openapi(app))
            bound_requests(document["components"]["schemas"], shared.settings, *key)
            built[key] = document
        return built[key]

    app.openapi = openapi  # type: ignore[method-assign]


def _serving(shared: AppState) -> tuple[ModelCard | None, tuple[str, ...] | None]:
    """The model card, and the model names a request may give, unless adapters may come and go
    (--allow-runtime-lora): then any name may be served at some time."""
    server = shared.server
    if server is None:
        return None, None
    if shared.settings.allow_runtime_lora:
        return server.engine.model_card, None
    names = (server.served_model_name, *(a.name for a in server.engine.adapters()))
    return server.engine.model_card, names


def bound_requests(
    schemas: dict[str, Schema],
    settings: Settings,
    card: ModelCard | None = None,
    models: tuple[str, ...] | None = None,
) -> None:
    """The limits the routes check against flags (input_limits, sampling, extensions) and, once
    the engine runs, against its model (the vocabulary, the context, the names it answers to)."""
    _set(schemas, ("ChatCompletionRequest", "CompletionRequest"), "n", maximum=settings.max_n)
    _set(schemas, ("CompletionRequest",), "best_of", maximum=settings.max_n)  # it must equal n
    _set(schemas, ("ChatCompletionRequest", "TokenizeRequest"), "messages", maxItems=settings.max_messages)
    for field in ("logprobs", "top_logprobs", "prompt_logprobs"):
        _set(schemas, GENERATING_REQUESTS, field, maximum=settings.max_logprobs)
    if settings.scheduling_policy != "priority":
        _set(schemas, GENERATING_REQUESTS, "priority", const=0)
    limits = [settings.max_tokens_limit, card.max_model_len if card else None]
    budget = min((limit for limit in limits if limit is not None), default=None)
    if budget is not None:
        _bound_completion_length(schemas, budget)
    if card is not None:
        for node in _walk(schemas):
            if node.get(TOKEN_ID_MARK):
                node["maximum"] = card.vocab_size - 1
    if models is not None:
        _name_models(schemas, models)


def _name_models(schemas: dict[str, Schema], models: tuple[str, ...]) -> None:
    """`model`, where given, is one of the names served (ServerState.check_model; else a 404)."""
    for model in MODEL_REQUESTS:
        prop = schemas.get(model, {}).get("properties", {}).get("model", {})
        for branch in prop.get("anyOf", []):
            if branch.get("type") == "string":
                branch["enum"] = list(models)


def _bound_completion_length(schemas: dict[str, Schema], budget: int) -> None:
    """At most `budget` tokens: the --max-tokens-limit, and the context, which the prompt shares.
    Chat's max_tokens is left unbounded here: the server ignores it when max_completion_tokens is
    set, and a rule between the two would cost schemathesis more combinations than it models (see
    LenientModel); its description says so."""
    _set(schemas, ("CompletionRequest",), "max_tokens", maximum=budget)
    _set(schemas, CHAT_REQUESTS, "max_completion_tokens", maximum=budget)
    _set(schemas, ("ResponsesRequest",), "max_output_tokens", maximum=budget)


def _set(schemas: dict[str, Schema], models: tuple[str, ...], field: str, **keywords: Any) -> None:
    """Adds `keywords` to the number or array schema of `field` in each of `models` that has it; a
    nullable field stays nullable, and a boolean (chat's `logprobs`) is left alone."""
    for model in models:
        prop = schemas.get(model, {}).get("properties", {}).get(field)
        if prop is None:
            continue
        for branch in prop.get("anyOf", [prop]):
            if branch.get("type") in ("integer", "number", "array"):
                _tighten(branch, keywords)


def _tighten(schema: Schema, keywords: dict[str, Any]) -> None:
    """A bound only narrows: the smaller maximum wins, so a flag never widens the model's own."""
    for key, value in keywords.items():
        if key in ("maximum", "maxItems") and key in schema:
            schema[key] = min(schema[key], value)
        else:
            schema[key] = value


def _walk(node: Any) -> Iterator[Schema]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)
