"""Token log-probabilities in the two shapes OpenAI uses: chat's list of entries, completions' columns.

Plain dicts, not pydantic models: with logprobs on, every token carries one entry plus its top
alternatives, and these go straight to JSON (the shapes are ChoiceLogprobs and CompletionLogprobs in
server/schemas).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from server.engine.base import TokenLogprob, TopLogprob


def token_id_name(token_id: int) -> str:
    """vLLM's `return_tokens_as_token_ids` name of a token: clients that map logprobs back to ids
    without a tokenizer (RL trainers) ask for it; `bytes` are then those of this name, as in vLLM."""
    return f"token_id:{token_id}"


def named_by_id(entry: TokenLogprob) -> TokenLogprob:
    top = [replace(t, token=token_id_name(t.token_id), utf8=None) for t in entry.top]
    return replace(entry, token=token_id_name(entry.token_id), utf8=None, top=top)


def token_bytes(entry: TokenLogprob | TopLogprob) -> list[int]:
    """The token's own UTF-8 bytes: part of a character split over tokens, where `token` is ""
    or the whole character."""
    return list(entry.utf8 if entry.utf8 is not None else entry.token.encode("utf-8"))


def top_entry(entry: TopLogprob) -> dict[str, Any]:
    return {"token": entry.token, "logprob": float(entry.logprob), "bytes": token_bytes(entry)}


def chat_entry(entry: TokenLogprob, top_n: int, by_id: bool = False) -> dict[str, Any]:
    if by_id:
        entry = named_by_id(entry)
    return {
        "token": entry.token,
        "logprob": float(entry.logprob),
        "bytes": token_bytes(entry),
        "top_logprobs": [top_entry(t) for t in entry.top[:top_n]],
    }


def chat_logprobs(entries: list[TokenLogprob], top_n: int, by_id: bool = False) -> dict[str, Any]:
    """`refusal` is always null: this server never refuses in-band."""
    return {"content": [chat_entry(e, top_n, by_id) for e in entries], "refusal": None}


def completion_top(entry: TokenLogprob, top_n: int) -> dict[str, float]:
    """The top `top_n` alternatives and always the sampled token, as OpenAI and vLLM answer (so
    `logprobs: 0` gives the sampled token alone)."""
    top = {t.token: float(t.logprob) for t in entry.top[:top_n]}
    top.setdefault(entry.token, float(entry.logprob))
    return top


class CompletionLogprobsBuilder:
    """Accumulates one choice's columns; `text_offset` counts characters from the choice's start.
    `by_id`: tokens named "token_id:<id>" (their offsets then count those names, as in vLLM)."""

    def __init__(self, top_n: int, start_offset: int = 0, by_id: bool = False) -> None:
        self._top_n = top_n
        self._by_id = by_id
        self._offset = start_offset
        self.value: dict[str, list[Any]] = {
            "tokens": [],
            "token_logprobs": [],
            "top_logprobs": [],
            "text_offset": [],
        }

    def add(self, entries: list[TokenLogprob]) -> dict[str, list[Any]]:
        """Add entries; returns the columns for just these entries (what a stream chunk carries)."""
        tokens: list[str] = []
        token_logprobs: list[float] = []
        top_logprobs: list[dict[str, float]] = []
        text_offset: list[int] = []
        offset = self._offset
        for e in map(named_by_id, entries) if self._by_id else entries:
            tokens.append(e.token)
            token_logprobs.append(float(e.logprob))
            top_logprobs.append(completion_top(e, self._top_n))
            text_offset.append(offset)
            offset += len(e.token)
        self._offset = offset
        part: dict[str, list[Any]] = {
            "tokens": tokens,
            "token_logprobs": token_logprobs,
            "top_logprobs": top_logprobs,
            "text_offset": text_offset,
        }
        for key, column in part.items():
            self.value[key].extend(column)
        return part

    def add_prompt(self, first_token: str, entries: list[TokenLogprob | None]) -> dict[str, list[Any]]:
        """The echoed prompt's columns, before any of the completion's (echo with logprobs). The first
        token has no logprob: nothing precedes it. The others' alternatives are the `top_n` most likely
        and the prompt token itself, as vLLM sends them. Offsets point into the echoed text, which ends
        where the completion starts (this builder's start offset); characters the text lacks (the
        space SentencePiece puts before the first word) clamp at 0."""
        if self._by_id:
            entries = [None if e is None else named_by_id(e) for e in entries]
        tokens = [first_token if e is None else e.token for e in entries]
        position = self._offset - sum(len(t) for t in tokens)
        part: dict[str, list[Any]] = {
            "tokens": tokens,
            "token_logprobs": [],
            "top_logprobs": [],
            "text_offset": [],
        }
        for token, e in zip(tokens, entries, strict=True):
            part["text_offset"].append(max(0, position))
            position += len(token)
            part["token_logprobs"].append(None if e is None else float(e.logprob))
            part["top_logprobs"].append(None if e is None else completion_top(e, self._top_n))
        for key, column in part.items():
            self.value[key].extend(column)
        return part


def prompt_logprobs_field(entries: list[TokenLogprob | None], top_n: int) -> list[dict[str, Any] | None]:
    """vLLM's `prompt_logprobs` response field: per prompt position (None for the first), token id ->
    logprob, rank and decoded token, for the prompt's token and the `top_n` most likely."""
    out: list[dict[str, Any] | None] = []
    for e in entries:
        if e is None:
            out.append(None)
            continue
        position = {str(e.token_id): {"logprob": float(e.logprob), "rank": e.rank, "decoded_token": e.token}}
        for t in e.top[:top_n]:
            position.setdefault(
                str(t.token_id), {"logprob": float(t.logprob), "rank": t.rank, "decoded_token": t.token}
            )
        out.append(position)
    return out
