"""The model's tokenizer, loaded once by the front end (transformers; no engine imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Tokenizer:
    """A thin wrapper so the rest of the server depends on four methods, not on transformers."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self._hf = hf_tokenizer
        self.bos_id: int | None = hf_tokenizer.bos_token_id
        self.eos_id: int | None = hf_tokenizer.eos_token_id
        self.vocab_size: int = len(hf_tokenizer)
        self.chat_template: str | None = getattr(hf_tokenizer, "chat_template", None) or None
        self.bos_token: str = hf_tokenizer.bos_token or ""
        self.eos_token: str = hf_tokenizer.eos_token or ""

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(path)))

    def encode(self, text: str) -> list[int]:
        """A whole prompt: BOS first, as the model was trained."""
        return ([self.bos_id] if self.bos_id is not None else []) + self.encode_segment(text)

    def encode_segment(self, text: str) -> list[int]:
        """One piece of a prompt, encoded on its own the way SentencePiece does (no BOS).

        Text that spells a control token ("</s>", "[INST]"...) stays text: a user must not be able to
        end their turn and forge the next one."""
        ids: list[int] = self._hf.encode(text, add_special_tokens=False, split_special_tokens=True)
        return ids

    def decode(self, ids: list[int]) -> str:
        text: str = self._hf.decode(ids, skip_special_tokens=True)
        return text

    def apply_jinja_template(self, messages: list[dict[str, str]], template: str | None = None) -> list[int]:
        """`template`: a jinja source to use instead of the tokenizer's own."""
        ids = self._hf.apply_chat_template(
            messages, chat_template=template, tokenize=True, add_generation_prompt=True, return_dict=False
        )
        return list(ids)

    def jinja_text(self, messages: list[dict[str, str]], template: str) -> str:
        """The prompt text `template` renders, before tokenization (to recognise a template's format)."""
        text: str = self._hf.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=True
        )
        return text
