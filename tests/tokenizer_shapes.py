"""The tokenizer shapes chat prompts meet, all from Mistral's v1 SentencePiece model, without weights.

- the tiny models' own (server/engine/tiny.py): Mixtral's tokenizer.json, "▁" before every piece
  between control tokens; with Chinese-Mixtral's added pieces too;
- transformers' LlamaTokenizer with legacy=False: no "▁" after a control token
  (`prepend_scheme="first"`), as many converted Llama/Mistral checkpoints ship it;
- that one with ChatML control tokens that strip the whitespace around them (lstrip/rstrip);
- a slow (pure Python) SentencePiece tokenizer, which has no offsets.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken
from transformers import AutoTokenizer, LlamaTokenizer, SentencePieceBackend

from server.engine.tiny import write_mistral_v1_tokenizer
from tests.tiny_models import CHINESE_WORDS

SHAPES = ("tiny-mixtral", "tiny-chinese-mixtral", "llama-non-legacy", "chatml-stripping", "slow")


def chatml_tokens() -> list[AddedToken]:
    return [
        AddedToken("<|im_start|>", lstrip=True, rstrip=True, normalized=False, special=True),
        AddedToken("<|im_end|>", lstrip=True, rstrip=False, normalized=False, special=True),
    ]


def build(shape: str, directory: Path) -> Any:
    """A transformers tokenizer of `shape`, written under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    write_mistral_v1_tokenizer(directory, None, CHINESE_WORDS if shape == "tiny-chinese-mixtral" else ())
    if shape in ("tiny-mixtral", "tiny-chinese-mixtral"):
        return AutoTokenizer.from_pretrained(str(directory))
    if shape == "slow":
        return SentencePieceBackend(
            vocab_file=str(directory / "tokenizer.model"),
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
        )
    hf = LlamaTokenizer.from_pretrained(str(directory), legacy=False, from_slow=True)
    if shape == "chatml-stripping":
        hf.add_special_tokens({"additional_special_tokens": chatml_tokens()})
    return hf


_RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x400, 0x4FF), (0x4E00, 0x9FFF), (0x1F300, 0x1F64F)]


def random_text(rng: random.Random, pieces: int, special_share: float, specials: Sequence[str]) -> str:
    """Up to `pieces` pieces of any script, each one of `specials` (whitespace, markup-like text)
    with probability `special_share`: SentencePiece treats a leading space specially."""
    out = []
    for _ in range(rng.randint(0, pieces)):
        if rng.random() < special_share:
            out.append(rng.choice(list(specials)))
        else:
            low, high = rng.choice(_RANGES)
            out.append(chr(rng.randint(low, high)))
    return "".join(out)
