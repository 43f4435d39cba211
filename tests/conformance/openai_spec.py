"""Validators for the JSON Schemas in openai_schemas/, written from OpenAI's published OpenAPI spec
(openai/openai-openapi: CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
CreateCompletionResponse, ErrorResponse and the shapes they use).

Strict where the spec is: required keys, types, `object` and `finish_reason` enums. Extra keys are
allowed, as the spec allows them (vLLM's extensions, later OpenAI fields).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).parent / "openai_schemas"
Kind = Literal["chat_completion", "chat_completion_chunk", "completion", "completion_chunk", "error"]


def _load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    return schema


def _completion_chunk() -> dict[str, Any]:
    """A completions stream event: the whole answer's shape, with `finish_reason` null until the
    choice ends (what OpenAI sends; the spec's enum omits the null)."""
    schema = copy.deepcopy(_load("completion"))
    schema["$id"] = schema["$id"].replace("completion.json", "completion_chunk.json")
    schema["$defs"]["finish_reason"] = {"anyOf": [schema["$defs"]["finish_reason"], {"type": "null"}]}
    return schema


@cache
def validator(kind: Kind) -> Draft202012Validator:
    common = _load("common")
    registry: Registry[Any] = Registry().with_resource(common["$id"], Resource.from_contents(common))
    schema = _completion_chunk() if kind == "completion_chunk" else _load(kind)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def assert_conforms(kind: Kind, body: Any) -> None:
    """Every violation, each with its JSON path, so one failure shows all that is wrong."""
    problems = [
        f"{e.json_path}: {e.message}"
        for e in sorted(validator(kind).iter_errors(body), key=lambda e: e.json_path)
    ]
    assert not problems, f"{kind} does not conform to OpenAI's spec:\n" + "\n".join(problems) + f"\n{body}"
