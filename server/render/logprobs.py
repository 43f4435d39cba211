"""Token log-probabilities in the two shapes OpenAI uses: chat's list of entries, completions' columns."""

from __future__ import annotations

from server.engine.base import TokenLogprob
from server.schemas.chat import ChoiceLogprobs, LogprobEntry, TopLogprobEntry
from server.schemas.completions import CompletionLogprobs


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def chat_logprobs(entries: list[TokenLogprob], top_n: int) -> ChoiceLogprobs:
    return ChoiceLogprobs(
        content=[
            LogprobEntry(
                token=e.token,
                logprob=e.logprob,
                bytes=_bytes(e.token),
                top_logprobs=[
                    TopLogprobEntry(token=t.token, logprob=t.logprob, bytes=_bytes(t.token))
                    for t in e.top[:top_n]
                ],
            )
            for e in entries
        ]
    )


class CompletionLogprobsBuilder:
    """Accumulates one choice's columns; `text_offset` counts characters from the choice's start."""

    def __init__(self, top_n: int, start_offset: int = 0) -> None:
        self._top_n = top_n
        self._offset = start_offset
        self.value = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])

    def add(self, entries: list[TokenLogprob]) -> CompletionLogprobs:
        """Add entries; returns the columns for just these entries (what a stream chunk carries)."""
        part = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
        for e in entries:
            for target in (part, self.value):
                target.tokens.append(e.token)
                target.token_logprobs.append(e.logprob)
                target.top_logprobs.append({t.token: t.logprob for t in e.top[: self._top_n]})
                target.text_offset.append(self._offset)
            self._offset += len(e.token)
        return part
