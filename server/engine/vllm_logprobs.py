"""vLLM's per-position logprobs (token id -> Logprob) as engine-neutral TokenLogprobs.

Duck-typed on vLLM's Logprob (logprob, rank, decoded_token), which 0.26 through 0.32 share.
"""

from __future__ import annotations

from typing import Any

from server.engine.base import TokenLogprob, TopLogprob

# A token the structured-output grammar forbids has logprob -inf, which JSON cannot carry;
# vLLM's own OpenAI server reports -9999.0.
MIN_LOGPROB = -9999.0


def token_logprob(token_id: int, candidates: dict[int, Any]) -> TokenLogprob:
    """One position's vLLM logprobs (token id -> Logprob) as the token at that position and its
    alternatives by rank; -inf (a token the grammar forbids) as MIN_LOGPROB. The one place where
    vLLM's decoded token strings become ours."""
    chosen = candidates[token_id]
    ranked = sorted(candidates.items(), key=lambda kv: kv[1].rank or 0)
    return TokenLogprob(
        token_id=token_id,
        token=chosen.decoded_token or "",
        logprob=max(chosen.logprob, MIN_LOGPROB),
        top=[
            TopLogprob(t, lp.decoded_token or "", max(lp.logprob, MIN_LOGPROB), lp.rank) for t, lp in ranked
        ],
        rank=chosen.rank,
    )


def prompt_logprobs(prompt_ids: list[int], raw: Any) -> list[TokenLogprob | None]:
    """The prompt positions in `raw` (vLLM's prompt_logprobs: None where nothing precedes), which
    start at `prompt_ids[0]`."""
    return [None if c is None else token_logprob(t, c) for t, c in zip(prompt_ids, raw, strict=False)]
