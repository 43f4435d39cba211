"""Logprob token texts on Mixtral's tokenizer (Mistral v1 SentencePiece, byte fallback): they add up
to the decoded text, leading spaces and split characters included."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from server.engine.tiny import write_mistral_v1_tokenizer
from server.engine.token_text import SequenceText, TokenPieces, _byte_level_alphabet
from tests.tokenizer_shapes import random_text


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory: Path = tmp_path_factory.mktemp("mistral-v1")
    write_mistral_v1_tokenizer(directory)
    return AutoTokenizer.from_pretrained(str(directory))


@pytest.fixture(scope="module")
def pieces(hf: Any) -> TokenPieces:
    return TokenPieces(hf)


def texts_of(pieces: TokenPieces, ids: list[int]) -> list[str]:
    sequence = SequenceText(pieces)
    return [sequence.advance(i) for i in ids]


def test_words_keep_their_leading_space(hf: Any, pieces: TokenPieces) -> None:
    ids = hf.encode("Hello nervous world", add_special_tokens=False)
    assert texts_of(pieces, ids) == [" Hello", " nervous", " world"]


def test_a_character_split_over_byte_tokens_comes_whole_with_its_last_byte(
    hf: Any, pieces: TokenPieces
) -> None:
    ids = hf.encode("a𝄞", add_special_tokens=False)  # U+1D11E is not in the vocabulary
    assert hf.convert_ids_to_tokens(ids)[-4:] == ["<0xF0>", "<0x9D>", "<0x84>", "<0x9E>"]
    assert texts_of(pieces, ids) == [" a", "", "", "", "𝄞"]
    assert [pieces.bytes_of(i) for i in ids[-4:]] == [b"\xf0", b"\x9d", b"\x84", b"\x9e"]


def test_an_alternative_is_read_in_the_sequence_so_far(hf: Any, pieces: TokenPieces) -> None:
    """The alternatives at a position continue the same pending bytes as the sampled token."""
    ids = hf.encode("a𝄞", add_special_tokens=False)[-4:]
    sequence = SequenceText(pieces)
    for i in ids[:3]:
        sequence.advance(i)
    assert sequence.peek(ids[3]) == "𝄞"
    assert sequence.peek(hf.convert_tokens_to_ids("▁a")) == "\ufffd a"  # an invalid sequence
    assert sequence.advance(ids[3]) == "𝄞"


def test_control_tokens_add_nothing(hf: Any, pieces: TokenPieces) -> None:
    assert pieces.bytes_of(hf.eos_token_id) == b""
    assert texts_of(pieces, [hf.eos_token_id]) == [""]


@pytest.mark.parametrize("seed", range(5))
def test_token_texts_and_bytes_add_up_to_the_text(hf: Any, pieces: TokenPieces, seed: int) -> None:
    text = random_text(random.Random(seed), 30, 0.0, [])
    ids = hf.encode(text, add_special_tokens=False)
    expected = hf.decode(ids)
    # SentencePiece prepends one space to the text; decode() strips it, the token texts keep it.
    assert "".join(texts_of(pieces, ids)) == " " + expected
    assert b"".join(pieces.bytes_of(i) for i in ids) == (" " + expected).encode()


def test_byte_level_alphabet_covers_every_byte_once() -> None:
    alphabet = _byte_level_alphabet()
    assert sorted(alphabet.values()) == list(range(256))
    assert alphabet["Ġ"] == ord(" ") and alphabet["a"] == ord("a")
