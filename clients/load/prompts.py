"""The workload: synthetic prompts of set token lengths, or conversations from a JSONL file."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.protocol import Message


@dataclass(frozen=True)
class WorkItem:
    """One request to send: chat `messages` (also turned into a prompt for /v1/completions)."""

    messages: list[Message]
    max_tokens: int

    @property
    def prompt(self) -> str:
        return "\n\n".join(str(m["content"]) for m in self.messages)


def load_tokenizer(name_or_path: str) -> Any:
    """transformers' AutoTokenizer, imported only here: a JSONL workload needs no tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path)


def synthetic_text(tokenizer: Any, length: int, rng: random.Random) -> str:
    """Text that the tokenizer encodes to `length` tokens (give or take one where a decode/encode
    round trip merges pieces): random token ids, decoded, then re-encoded and trimmed or topped up,
    as `vllm bench serve --dataset-name random` makes its prompts. Random ids defeat prefix caching."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    ids = [rng.choice(vocab) for _ in range(length)]
    text = ""
    for _ in range(10):
        text = tokenizer.decode(ids, skip_special_tokens=True)
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) == length:
            break
        ids = encoded[:length] if len(encoded) > length else encoded + [rng.choice(vocab)]
    return str(text)


def synthetic(tokenizer: Any, count: int, input_len: int, output_len: int, seed: int) -> list[WorkItem]:
    rng = random.Random(seed)
    return [
        WorkItem([{"role": "user", "content": synthetic_text(tokenizer, input_len, rng)}], output_len)
        for _ in range(count)
    ]


def _messages(record: dict[str, Any]) -> list[Message]:
    """OpenAI `messages`, or ShareGPT `conversations` ({"from": "human"|"gpt"|"system", "value"})."""
    if "messages" in record:
        return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    roles = {
        "human": "user",
        "user": "user",
        "gpt": "assistant",
        "assistant": "assistant",
        "system": "system",
    }
    return [{"role": roles[t["from"]], "content": t["value"]} for t in record["conversations"]]


def from_jsonl(path: Path, count: int, output_len: int) -> list[WorkItem]:
    """Each line one conversation. A trailing assistant turn is the recorded answer: it is dropped
    from the request. A line's own `max_tokens` wins over `output_len`. Lines are reused in order
    when `count` exceeds them."""
    items: list[WorkItem] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        messages = _messages(record)
        while messages and messages[-1]["role"] == "assistant":
            messages.pop()
        if messages:
            items.append(WorkItem(messages, int(record.get("max_tokens", output_len))))
    if not items:
        raise ValueError(f"{path}: no conversation with a user turn")
    return [items[i % len(items)] for i in range(count)]
