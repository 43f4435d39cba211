"""The text and bytes of each generated token, for logprobs.

vLLM's `decoded_token` is a per-token `decode`, which on a SentencePiece tokenizer (Mixtral's)
drops the word's leading space (" nervous" comes back "nervous") and turns each byte-fallback piece
of a multi-byte character into U+FFFD. Clients add the tokens up to the text (and completions'
`text_offset` counts on it), so here a token's text is what it adds to the output: its vocabulary
piece as UTF-8 bytes, decoded incrementally along the sequence. A character split over byte tokens
appears whole with the token that completes it, the tokens before it are ""; `bytes` stays each
token's own bytes, which add up to the text's UTF-8.

Only the tokenizer's vocabulary is read (no vllm import), so the rules are testable on their own.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE_MARKER = "\u2581"  # SentencePiece's "▁"


def _byte_level_alphabet() -> dict[str, int]:
    """Byte-level BPE (GPT-2, tekken) writes each byte as one printable character: printable Latin-1
    bytes as themselves, the others as the characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    alphabet = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            alphabet[chr(256 + extra)] = b
            extra += 1
    return alphabet


def _decoder_types(tokenizer: Any) -> set[str]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    try:
        decoder = json.loads(backend.to_str()).get("decoder") or {}
    except (ValueError, TypeError, AttributeError):
        return set()
    parts = decoder.get("decoders") or [decoder]
    return {str(part.get("type")) for part in parts if isinstance(part, dict)}


class TokenPieces:
    """Each token id's UTF-8 bytes, from the model's vocabulary; control tokens (BOS, EOS) have none,
    as the output text leaves them out."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._special = {int(i) for i in getattr(tokenizer, "all_special_ids", ()) or ()}
        self._byte_level = _byte_level_alphabet() if "ByteLevel" in _decoder_types(tokenizer) else None
        self._cache: dict[int, bytes] = {}

    def bytes_of(self, token_id: int) -> bytes:
        cached = self._cache.get(token_id)
        if cached is None:
            cached = self._cache[token_id] = self._bytes(token_id)
        return cached

    def _bytes(self, token_id: int) -> bytes:
        if token_id in self._special:
            return b""
        piece = self._tokenizer.convert_ids_to_tokens(token_id)
        if not isinstance(piece, str):
            return b""
        if self._byte_level is not None:
            if all(ch in self._byte_level for ch in piece):
                return bytes(self._byte_level[ch] for ch in piece)
            return piece.encode("utf-8")  # an added token, written as itself
        match = _BYTE_PIECE.fullmatch(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        return piece.replace(_SPACE_MARKER, " ").encode("utf-8")


class SequenceText:
    """One generated sequence's token texts, in order. Invalid UTF-8 reads as U+FFFD."""

    def __init__(self, pieces: TokenPieces) -> None:
        self._pieces = pieces
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def bytes_of(self, token_id: int) -> bytes:
        return self._pieces.bytes_of(token_id)

    def peek(self, token_id: int) -> str:
        """The text `token_id` would add at the current position (for the alternatives there)."""
        raw = self._pieces.bytes_of(token_id)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        decoder.setstate(self._decoder.getstate())
        return decoder.decode(raw)

    def advance(self, token_id: int) -> str:
        """The text the sampled `token_id` adds; moves the position on."""
        return self._decoder.decode(self._pieces.bytes_of(token_id))
