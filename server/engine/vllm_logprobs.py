"""vLLM's per-position logprobs (token id -> Logprob) as engine-neutral TokenLogprobs, and each token's
own text.

Duck-typed on vLLM's Logprob (logprob, rank) and the HF tokenizer, which 0.26 through 0.32 share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.engine.base import TokenLogprob, TopLogprob

# A token the structured-output grammar forbids has logprob -inf, which JSON cannot carry;
# vLLM's own OpenAI server reports -9999.0.
MIN_LOGPROB = -9999.0
_SPACE_MARK = "\u2581"  # SentencePiece's '▁': the token starts a word


class TokenTexts:
    """Each token's text as it stands in a decoded sequence, so that a sequence's token texts
    concatenate to its text. Decoding one token alone drops the space SentencePiece marks at its
    start ('▁quick' -> 'quick'), as vLLM's decoded tokens do; this keeps it (' quick'). A lone byte
    of a longer UTF-8 character decodes to U+FFFD."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._texts: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        text = self._texts.get(token_id)
        if text is None:
            piece = self._tokenizer.convert_ids_to_tokens(token_id)
            text = str(self._tokenizer.decode([token_id]))
            if isinstance(piece, str) and piece.startswith(_SPACE_MARK) and not text.startswith(" "):
                text = " " + text
            self._texts[token_id] = text
        return text


def token_logprob(token_id: int, candidates: dict[int, Any], text: Callable[[int], str]) -> TokenLogprob:
    """One position's vLLM logprobs (token id -> Logprob) as the token at that position and its
    alternatives by rank; -inf (a token the grammar forbids) as MIN_LOGPROB."""
    chosen = candidates[token_id]
    ranked = sorted(candidates.items(), key=lambda kv: kv[1].rank or 0)
    return TokenLogprob(
        token_id=token_id,
        token=text(token_id),
        logprob=max(chosen.logprob, MIN_LOGPROB),
        top=[TopLogprob(t, text(t), max(lp.logprob, MIN_LOGPROB), lp.rank) for t, lp in ranked],
        rank=chosen.rank,
    )


def prompt_logprobs(prompt_ids: list[int], raw: Any, text: Callable[[int], str]) -> list[TokenLogprob | None]:
    """The prompt positions in `raw` (vLLM's prompt_logprobs: None where nothing precedes), which
    start at `prompt_ids[0]`."""
    return [None if c is None else token_logprob(t, c, text) for t, c in zip(prompt_ids, raw, strict=False)]
