"""vLLM's output extensions, shared by chat and completions: the prompt's logprobs, token ids, usage on
every stream chunk, and the prefix cache's hits in usage.

They cost nothing when not asked for: a request without them carries no Extras, and the stream's
hot path then checks one `is None`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.engine.base import Delta
from server.openai.bodies.chunks import usage


@dataclass(frozen=True, slots=True)
class Extras:
    prompt_ids: list[list[int]]  # per prompt
    n: int = 1  # choices per prompt: choice i answers prompt i // n
    prompt_logprobs: int | None = None  # the `prompt_logprobs` field, with this many alternatives
    return_token_ids: bool = False
    continuous_usage: bool = False
    echo_logprobs: bool = False  # completions' echo with logprobs: the prompt's columns come first
    first_tokens: list[str] = field(default_factory=list)  # per prompt: its first token's text


@dataclass(slots=True)
class Counts:
    """Tokens per choice and prefix-cache hits per prompt, as the deltas arrive."""

    prompt_lengths: list[int]
    n: int
    completion: list[int] = field(default_factory=list)
    cached: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.completion = [0] * (len(self.prompt_lengths) * self.n)
        self.cached = [0] * len(self.prompt_lengths)

    def add(self, index: int, delta: Delta) -> None:
        self.completion[index] += len(delta.token_ids)
        if index % self.n == 0:  # a prompt's cache hits: its first choice's (the others share them)
            self.cached[index // self.n] = delta.num_cached_prompt_tokens

    def usage_of(self, index: int) -> dict[str, Any]:
        """vLLM's continuous usage: the choice's prompt and its completion so far."""
        prompt = index // self.n
        return usage(self.prompt_lengths[prompt], self.completion[index], self.cached[prompt])


def cached_tokens(index: int, delta: Delta, n: int, cached: list[int]) -> None:
    """Note a prompt's prefix-cache hits from its first choice's deltas (the others share them)."""
    if index % n == 0:
        cached[index // n] = delta.num_cached_prompt_tokens
