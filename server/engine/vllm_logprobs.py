"""vLLM's per-position logprobs (token id -> Logprob) as engine-neutral TokenLogprobs, for the
generated tokens and for the prompt's.

Token texts come from server/engine/token_text.py (each token's own piece of the decoded sequence,
so a sequence's tokens add up to its text); without a tokenizer, from vLLM's per-token
`decoded_token`. Duck-typed on vLLM's Logprob (logprob, rank, decoded_token), which 0.26 through
0.32 share.
"""

from __future__ import annotations

from typing import Any

from server.engine.base import TokenLogprob, TopLogprob
from server.engine.token_text import SequenceText, TokenPieces

# A token the structured-output grammar forbids has logprob -inf, which JSON cannot carry;
# vLLM's own OpenAI server reports -9999.0.
MIN_LOGPROB = -9999.0


def _clamp(logprob: float) -> float:
    return max(logprob, MIN_LOGPROB)


def token_logprob(token_id: int, candidates: dict[int, Any], text: SequenceText | None) -> TokenLogprob:
    """One position: the token there and its alternatives by rank. With `text`, moves it past the
    token."""
    chosen = candidates[token_id]
    ranked = sorted(candidates.items(), key=lambda kv: kv[1].rank or 0)
    if text is None:
        top = [TopLogprob(t, lp.decoded_token or "", _clamp(lp.logprob), rank=lp.rank) for t, lp in ranked]
        token = chosen.decoded_token or ""
        return TokenLogprob(token_id, token, _clamp(chosen.logprob), top, rank=chosen.rank)
    top = [TopLogprob(t, text.peek(t), _clamp(lp.logprob), text.bytes_of(t), lp.rank) for t, lp in ranked]
    token = text.advance(token_id)
    return TokenLogprob(token_id, token, _clamp(chosen.logprob), top, text.bytes_of(token_id), chosen.rank)


def output_logprobs(output: Any, text: SequenceText | None) -> list[TokenLogprob] | None:
    """The logprobs of one CompletionOutput delta's new tokens."""
    raw = output.logprobs
    if raw is None:
        return None
    n = len(output.token_ids)
    raw = list(raw)[len(raw) - n :] if n else []  # vLLM 0.26 returns the whole history on empty deltas
    return [token_logprob(t, c, text) for t, c in zip(output.token_ids, raw, strict=True)]


def prompt_logprobs(prompt_ids: list[int], raw: Any, text: SequenceText | None) -> list[TokenLogprob | None]:
    """The prompt positions in `raw` (vLLM's prompt_logprobs: None where nothing precedes), which
    start at `prompt_ids[0]`."""
    entries: list[TokenLogprob | None] = []
    for token_id, candidates in zip(prompt_ids, raw, strict=False):
        if candidates is None:
            if text is not None:
                text.advance(token_id)
            entries.append(None)
        else:
            entries.append(token_logprob(token_id, candidates, text))
    return entries


class RequestTexts:
    """One request's token texts, each sequence decoded along itself: the prompt's (for
    prompt_logprobs, which vLLM may hand out over several deltas) and the output's. None where no
    logprobs were asked for, or the engine has no tokenizer."""

    __slots__ = ("output", "prompt", "prompt_done")

    def __init__(self, pieces: TokenPieces | None, logprobs: bool, prompt_logprobs: bool) -> None:
        self.output = SequenceText(pieces) if pieces is not None and logprobs else None
        self.prompt = SequenceText(pieces) if pieces is not None and prompt_logprobs else None
        self.prompt_done = 0  # prompt positions whose logprobs were handed out
