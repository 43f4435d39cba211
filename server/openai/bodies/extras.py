"""vLLM's output extensions, shared by chat and completions: the prompt's logprobs, token ids, and usage
on every stream chunk.

They cost nothing when not asked for: a request without them carries no Extras, and the stream's
hot path then checks one `is None`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Extras:
    prompt_ids: list[list[int]]  # per prompt
    n: int = 1  # choices per prompt: choice i answers prompt i // n
    prompt_logprobs: int | None = None  # the `prompt_logprobs` field, with this many alternatives
    return_token_ids: bool = False
    continuous_usage: bool = False
    echo_logprobs: bool = False  # completions' echo with logprobs: the prompt's columns come first
    first_tokens: list[str] = field(default_factory=list)  # per prompt: its first token's text
