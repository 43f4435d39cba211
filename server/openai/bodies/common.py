"""What chat and completions bodies share: the fields every body starts and ends with, the prefix
cache's rule, and the skeleton of a stream.

A stream runs one of two loops. `stream_plain` is the hot path of a request without vLLM's output
extensions: per delta it counts, times, and encodes one choice, nothing more (measured in
bench/results/2026-11-23-frontend-profile). `stream_extended` adds what the extensions need: tokens
per choice, token ids and usage on every chunk. The endpoint modules hand them what differs: how a
delta becomes a choice, and the events that open a stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from server.engine.base import Delta
from server.engine.fanout import DeltaStream
from server.observability.metrics import RequestTimer
from server.openai.bodies.chunks import ChunkEncoder, usage
from server.openai.bodies.extras import Extras
from server.openai.bodies.logprobs import prompt_logprobs_field

S = TypeVar("S")


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """The fields every chat and completions body and stream starts with; ChatContext and
    CompletionContext add their own."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    timer: RequestTimer
    system_fingerprint: str


def encoder(head: Head, kind: str) -> ChunkEncoder:
    return ChunkEncoder(head.id, kind, head.created, head.model, head.system_fingerprint)


def answer(
    head: Head, kind: str, choices: list[dict[str, Any]], body_usage: dict[str, Any]
) -> dict[str, Any]:
    """A whole answer's top-level fields, in the order `model_dump()` writes them; an endpoint adds
    its own after these."""
    return {
        "id": head.id,
        "object": kind,
        "created": head.created,
        "model": head.model,
        "choices": choices,
        "usage": body_usage,
        "system_fingerprint": head.system_fingerprint,
    }


class CacheHits:
    """Prefix-cache hits per prompt, for usage's `cached_tokens`. The engine reports them on every
    sequence; the choices of one prompt share it, so only the first choice's count: summing all of
    them would count the prompt n times."""

    __slots__ = ("hits", "n")

    def __init__(self, n: int, prompts: int) -> None:
        self.n = n  # choices per prompt: choice i answers prompt i // n
        self.hits = [0] * prompts

    def note(self, index: int, delta: Delta) -> None:
        if index % self.n == 0:
            self.hits[index // self.n] = delta.num_cached_prompt_tokens

    def total(self) -> int:
        return sum(self.hits)


class Counts(CacheHits):
    """Tokens per choice as well, for vLLM's continuous usage (the usage so far on every chunk)."""

    __slots__ = ("completion", "prompt_lengths")

    def __init__(self, prompt_lengths: list[int], n: int) -> None:
        super().__init__(n, len(prompt_lengths))
        self.prompt_lengths = prompt_lengths
        self.completion = [0] * (len(prompt_lengths) * n)

    def usage_of(self, index: int) -> dict[str, Any]:
        """The choice's prompt and its completion so far."""
        prompt = index // self.n
        return usage(self.prompt_lengths[prompt], self.completion[index], self.hits[prompt])


def prompt_fields(extras: Extras, prompt_logprobs: list[Any], prompt: list[int]) -> dict[str, Any]:
    """vLLM's fields on the prompt in a whole answer, where asked for (at the top in chat, on each
    choice in completions). Their keys are there already, null: putting these in keeps their places."""
    fields: dict[str, Any] = {}
    if extras.prompt_logprobs is not None:
        fields["prompt_logprobs"] = prompt_logprobs_field(prompt_logprobs, extras.prompt_logprobs)
    if extras.return_token_ids:
        fields["prompt_token_ids"] = prompt
    return fields


async def stream_plain(
    head: Head,
    encoder: ChunkEncoder,
    deltas: DeltaStream,
    include_usage: bool,
    cache: CacheHits,
    choice: Callable[[S, int, Delta], dict[str, Any]],
    state: S,
    before: Sequence[bytes] = (),
    at_first: Sequence[bytes] = (),
) -> AsyncGenerator[bytes, None]:
    """`before`: events sent at once; `at_first`: events sent with the first delta, not before the
    prefill, as OpenAI and vLLM do (clients and benchmarks take the first chunk with choices as the
    first token). `choice(state, index, delta)` is called for deltas with something to say."""
    completion_tokens = 0
    reasons: list[str] = []
    timer = head.timer
    async with contextlib.aclosing(deltas):
        for event in before:
            yield event
        async for index, delta in deltas:
            if at_first:
                for event in at_first:
                    yield event
                at_first = ()
            completion_tokens += len(delta.token_ids)
            timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
                cache.note(index, delta)
            if delta.text or delta.finish_reason or delta.logprobs:
                yield encoder.choice(choice(state, index, delta))
    if include_usage:
        yield encoder.usage(head.prompt_tokens, completion_tokens, cache.total())
    timer.finish(head.prompt_tokens, completion_tokens, reasons)


async def stream_extended(
    head: Head,
    encoder: ChunkEncoder,
    deltas: DeltaStream,
    include_usage: bool,
    counts: Counts,
    extras: Extras,
    choice: Callable[[S, int, Delta], dict[str, Any] | None],
    state: S,
    at_first: Callable[[], list[bytes]] | None = None,
) -> AsyncGenerator[bytes, None]:
    """As vLLM streams with its extensions: token_ids on every chunk and, with continuous usage,
    the usage so far. `choice(state, index, delta)` gives the delta's choice, or None to send none;
    `at_first()` the events that go out with the first delta."""
    reasons: list[str] = []
    timer = head.timer
    completion = counts.completion
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            completion[index] += len(delta.token_ids)
            counts.note(index, delta)
            if at_first is not None:
                for event in at_first():
                    yield event
                at_first = None
            timer.token()
            if delta.finish_reason:
                reasons.append(delta.finish_reason)
            body = choice(state, index, delta)
            if body is None:
                continue
            if extras.return_token_ids:
                body["token_ids"] = delta.token_ids
            fields = {"usage": counts.usage_of(index)} if extras.continuous_usage else {}
            yield encoder.choice_with(body, fields)
    completion_tokens = sum(completion)
    if include_usage:
        yield encoder.usage(head.prompt_tokens, completion_tokens, counts.total())
    timer.finish(head.prompt_tokens, completion_tokens, reasons)
