"""The operator's caps on one request: choices (n), messages, prompt tokens and max_tokens.

Each refusal is a 400 that names the limit and the field, so a client can fix its request; the
body-size cap is a 413 and lives in server/http/middleware/body_limit.py, before the body is read.
"""

from __future__ import annotations

from server.config import Settings
from server.errors import InvalidRequestError
from server.openai.sampling import resolve_max_tokens


def check_n(n: int, settings: Settings) -> None:
    if n > settings.max_n:
        raise InvalidRequestError(f"n is {n}; this server allows at most {settings.max_n}.", param="n")


def check_messages(count: int, settings: Settings) -> None:
    if count > settings.max_messages:
        raise InvalidRequestError(
            f"The request has {count} messages; this server allows at most {settings.max_messages}.",
            param="messages",
        )


def check_prompt(tokens: int, settings: Settings, param: str) -> None:
    limit = settings.max_prompt_tokens
    if limit is not None and tokens > limit:
        raise InvalidRequestError(
            f"The prompt has {tokens} tokens; this server allows at most {limit} per prompt.", param=param
        )


def max_tokens(
    prompt_tokens: int,
    requested: int | None,
    settings: Settings,
    max_model_len: int,
    *,
    prompt_param: str = "messages",
) -> int:
    """The completion budget: what the request asks (at most --max-tokens-limit), or by default
    the limit or what the context leaves, whichever is smaller. `prompt_param` names the field a
    too-long prompt came in (chat's `messages`, completions' `prompt`)."""
    limit = settings.max_tokens_limit
    if limit is not None and requested is not None and requested > limit:
        raise InvalidRequestError(
            f"max_tokens is {requested}; this server allows at most {limit}.", param="max_tokens"
        )
    budget = resolve_max_tokens(prompt_tokens, requested, max_model_len, prompt_param=prompt_param)
    return min(budget, limit) if limit is not None and requested is None else budget
