"""Tokenizes a prompt a chat template rendered so that control tokens count only in the template's
own markup: inside a message's text, "</s>" or "[INST]" is plain text, as in the built-in [INST]
renderer, so a user cannot end their turn and forge the next one.

The prompt is tokenized as ONE string, never piece by piece: pieces encoded apart would each get
SentencePiece's leading "▁" (or lose it after a control token, on `prepend_scheme="first"`
tokenizers) and could not merge across the piece boundaries, so the ids would differ from the
template's own path for ordinary text. Instead, when message text spells a control token, each
control token of the markup is replaced by a marker: an added token of its own, with the same
strip/normalize flags, that the tokenizer splits the text at exactly as it does at the control
token. A copy of the tokenizer with those markers, set to read special tokens as text, encodes the
prompt; the markers' ids are then mapped back. Everything else is what the tokenizer does anyway.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from server.errors import InvalidRequestError

Span = tuple[int, int]  # [start, stop) in the rendered prompt


def control_tokens(hf_tokenizer: Any) -> dict[int, str]:
    """id -> text of the tokens that the tokenizer parses out of any text unless told not to."""
    return {i: t.content for i, t in hf_tokenizer.added_tokens_decoder.items() if t.special}


class MarkupEncoder:
    """Encodes rendered prompts for one fast (Rust `tokenizers`) transformers tokenizer."""

    def __init__(self, hf_tokenizer: Any) -> None:
        from tokenizers import AddedToken
        from tokenizers import Tokenizer as Backend

        self._hf = hf_tokenizer
        self._control = control_tokens(hf_tokenizer)
        copy = Backend.from_str(hf_tokenizer.backend_tokenizer.to_str())
        copy.no_truncation()
        copy.no_padding()
        declared = hf_tokenizer.added_tokens_decoder
        nonce = secrets.token_hex(8)  # no request can spell a marker on purpose
        self._marker = {i: f"\ue000{nonce}:{i}\ue001" for i in self._control}
        copy.add_tokens(
            [
                AddedToken(
                    self._marker[i],
                    single_word=declared[i].single_word,
                    lstrip=declared[i].lstrip,
                    rstrip=declared[i].rstrip,
                    normalized=declared[i].normalized,
                    special=False,  # still split on, below, where control tokens no longer are
                )
                for i in self._control
            ]
        )
        copy.encode_special_tokens = True
        self._copy = copy
        self._unmark = {copy.token_to_id(m): i for i, m in self._marker.items()}

    @staticmethod
    def supports(hf_tokenizer: Any) -> bool:
        return bool(getattr(hf_tokenizer, "is_fast", False))

    def encode(self, text: str, content: Sequence[Span]) -> list[int]:
        """`text`'s ids, control tokens parsed only outside the `content` spans (message text).

        The same ids as the tokenizer gives `text` whenever no message text spells a control token."""
        encoded = self._hf(text, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = list(encoded["input_ids"])
        markup: list[tuple[Span, int]] = []
        forged = False
        for token, (start, stop) in zip(ids, encoded["offset_mapping"], strict=True):
            if token not in self._control:
                continue
            span = self._literal(text, token, start, stop)
            if any(span[0] < c_stop and c_start < span[1] for c_start, c_stop in content):
                forged = True  # in, or straddling, message text: it stays text
            else:
                markup.append((span, token))
        return self._encode_marked(text, markup) if forged else ids

    def _literal(self, text: str, token: int, start: int, stop: int) -> Span:
        """The control token's own characters: its offsets can include whitespace it strips."""
        at = text.find(self._control[token], start, stop)
        return (start, stop) if at < 0 else (at, at + len(self._control[token]))

    def _encode_marked(self, text: str, markup: list[tuple[Span, int]]) -> list[int]:
        if any(marker in text for marker in self._marker.values()):
            raise InvalidRequestError("The messages contain text this server reserves.", param="messages")
        parts, end = [], 0
        for (start, stop), token in markup:
            parts += [text[end:start], self._marker[token]]
            end = stop
        parts.append(text[end:])
        encoded = self._copy.encode("".join(parts), add_special_tokens=False)
        return [self._unmark.get(i, i) for i in encoded.ids]
