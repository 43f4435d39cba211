"""The model's tokenizer, loaded once by the front end (transformers; no engine imports)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.prompt.markup import MarkupEncoder, Span, control_tokens


class Tokenizer:
    """A thin wrapper so the rest of the server depends on a few methods, not on transformers."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self._hf = hf_tokenizer
        self.bos_id: int | None = hf_tokenizer.bos_token_id
        self.eos_id: int | None = hf_tokenizer.eos_token_id
        self.vocab_size: int = len(hf_tokenizer)
        self.chat_template: str | None = getattr(hf_tokenizer, "chat_template", None) or None
        self.bos_token: str = hf_tokenizer.bos_token or ""
        self.eos_token: str = hf_tokenizer.eos_token or ""
        self.control_tokens: dict[int, str] = control_tokens(hf_tokenizer)
        self._markup: MarkupEncoder | None = None

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

    def pieces(self, ids: list[int]) -> list[str]:
        """Each id's vocabulary entry as the tokenizer writes it ("▁Hello", "<0x0A>", "</s>")."""
        return [str(p) for p in self._hf.convert_ids_to_tokens(ids)]

    def decode(self, ids: list[int]) -> str:
        text: str = self._hf.decode(ids, skip_special_tokens=True)
        return text

    def encode_rendered(self, text: str) -> list[int]:
        """A prompt a chat template rendered, tokenized as transformers' apply_chat_template does:
        no BOS added (the template writes its own), and every control token the text spells is one."""
        ids: list[int] = self._hf(text, add_special_tokens=False)["input_ids"]
        return list(ids)

    def encode_markup(self, text: str, content: Sequence[Span]) -> list[int] | None:
        """A rendered prompt whose `content` spans (message text) are plain text: control tokens
        count only in the template's markup (server/prompt/markup.py). None where this tokenizer
        cannot do that (not a fast tokenizer)."""
        if not MarkupEncoder.supports(self._hf):
            return None
        if self._markup is None:  # a tokenizer copy, built once (ChatTemplate asks at startup)
            self._markup = MarkupEncoder(self._hf)
        return self._markup.encode(text, content)

    def jinja_text(
        self,
        messages: list[dict[str, str]],
        template: str,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
    ) -> str:
        """The prompt text `template` renders, by default with the generation prompt, before
        tokenization. `continue_final_message`: cut after the last message's text, left open."""
        text: str = self._hf.apply_chat_template(
            messages,
            chat_template=template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
        )
        return text
