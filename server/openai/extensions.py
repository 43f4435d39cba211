"""vLLM's request-level extension fields that act before sampling: the prompt's truncation and
special tokens, the scheduling priority, and a client-chosen response id (vllm serve's semantics).
"""

from __future__ import annotations

from typing import Literal

from server.config import Settings
from server.errors import InvalidRequestError


def truncate_prompt(
    ids: list[int], keep: int | None, side: Literal["left", "right"] | None, max_model_len: int
) -> list[int]:
    """`truncate_prompt_tokens`: keep `keep` tokens, the last ones (left truncation, vLLM's default
    for generation) or with side "right" the first ones; -1 keeps as many as the context allows
    while leaving one token for the completion. More than the context is a 400, as in vLLM."""
    if keep is None:
        return ids
    if keep > max_model_len:
        raise InvalidRequestError(
            f"truncate_prompt_tokens is {keep}, more than the model's context of {max_model_len} tokens.",
            param="truncate_prompt_tokens",
        )
    if keep < 0:
        keep = max_model_len - 1
    if len(ids) <= keep:
        return ids
    return ids[:keep] if side == "right" else ids[len(ids) - keep :]


def with_bos(ids: list[int], add: bool, bos_id: int | None) -> list[int]:
    """Chat's `add_special_tokens`: a BOS in front of what the template rendered (which has its own,
    so the prompt then starts with two, as vLLM's does)."""
    return [bos_id, *ids] if add and bos_id is not None else ids


def check_priority(priority: int, settings: Settings) -> None:
    """The engine would run a priority under first-come-first-served as if it were 0: refused."""
    if priority != 0 and settings.scheduling_policy != "priority":
        raise InvalidRequestError(
            f"priority is {priority}, but this server schedules first come, first served; start it "
            "with --scheduling-policy priority to use priorities.",
            param="priority",
        )


def response_id(generated: str, prefix: str, requested: str | None) -> str:
    """The response's id: `prefix` and the request's `request_id`, else the one the server made for
    its engine requests. Engine requests keep the server's ids: two clients may send the same
    request_id."""
    return generated if requested is None else f"{prefix}-{requested}"
