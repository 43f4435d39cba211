"""Stream events as JSON bytes, the cheap way: one event per token per stream is the server's hottest
path, so nothing in it goes through pydantic.

The fields that never change within a stream (id, object, created, model, system_fingerprint) are
encoded once per request; each event encodes only its choice, a small dict, with orjson. For these
shapes orjson writes the same bytes as pydantic's `model_dump_json(exclude_unset=True)` of the
response models in server/openai/schemas (key order, compact separators, unescaped UTF-8, float digits,
inf/nan as null): the choice dicts hold every required key (null where OpenAI's spec allows it, as
`finish_reason` before the last chunk) and the optional ones only when set, and
tests/unit/openai/test_bodies.py holds the two equal.
"""

from __future__ import annotations

from typing import Any

import orjson


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    """OpenAI's usage; `cached_tokens`: prompt tokens the engine's prefix cache already held."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


class ChunkEncoder:
    """`{"id":..,"object":..,"created":..,"model":..,"choices":[...],"system_fingerprint":..}` for one
    request's events."""

    __slots__ = ("_head", "_tail")

    def __init__(self, id: str, kind: str, created: int, model: str, system_fingerprint: str) -> None:
        head = orjson.dumps({"id": id, "object": kind, "created": created, "model": model})
        self._head = head[:-1] + b',"choices":['
        self._tail = b',"system_fingerprint":' + orjson.dumps(system_fingerprint) + b"}"

    def choice(self, choice: dict[str, Any]) -> bytes:
        return self._head + orjson.dumps(choice) + b"]" + self._tail

    def usage(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> bytes:
        """The last event when `stream_options.include_usage` is set: no choices, only usage."""
        body = usage(prompt_tokens, completion_tokens, cached_tokens)
        return self._head + b'],"usage":' + orjson.dumps(body) + self._tail

    def choice_with(self, choice: dict[str, Any], fields: dict[str, Any]) -> bytes:
        """One choice, then top-level `fields` after `choices` (vLLM's extensions: usage on every
        chunk, prompt_token_ids)."""
        if not fields:
            return self.choice(choice)
        return self._head + orjson.dumps(choice) + b"]," + orjson.dumps(fields)[1:-1] + self._tail
