"""Typed responses, parsed from plain JSON with the standard library only.

Dataclasses rather than pydantic models: the client (and the load tester built on it) must run on a
machine that has nothing but httpx, and must accept whatever extra fields another OpenAI-compatible
server sends; only the fields a caller reads are typed, the whole body stays in `raw`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> Usage | None:
        if not data:
            return None
        prompt = int(data.get("prompt_tokens") or 0)
        completion = int(data.get("completion_tokens") or 0)
        return cls(prompt, completion, int(data.get("total_tokens") or prompt + completion))


@dataclass(frozen=True)
class Choice:
    """One answer: `text` is the chat message's content or the completion's text."""

    index: int
    text: str
    finish_reason: str | None


@dataclass(frozen=True)
class Response:
    """A chat completion or a text completion; `text` is the first choice's."""

    id: str
    model: str
    choices: list[Choice]
    usage: Usage | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Response:
        choices = []
        for i, c in enumerate(data.get("choices") or []):
            message = c.get("message")
            text = (message or {}).get("content") if message is not None else c.get("text")
            choices.append(Choice(int(c.get("index", i)), text or "", c.get("finish_reason")))
        return cls(
            id=str(data.get("id", "")),
            model=str(data.get("model", "")),
            choices=choices,
            usage=Usage.parse(data.get("usage")),
            raw=data,
        )


@dataclass(frozen=True)
class Delta:
    """One streamed piece: new text of choice `index`, and at the end its finish reason.

    The usage-only chunk that `stream_options.include_usage` asks for arrives as a Delta with
    `usage` set and `index` -1."""

    index: int
    text: str
    role: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None

    @classmethod
    def parse(cls, chunk: dict[str, Any]) -> list[Delta]:
        usage = Usage.parse(chunk.get("usage"))
        out = []
        for i, c in enumerate(chunk.get("choices") or []):
            delta = c.get("delta")
            text = (delta or {}).get("content") if delta is not None else c.get("text")
            role = (delta or {}).get("role")
            out.append(cls(int(c.get("index", i)), text or "", role, c.get("finish_reason")))
        if usage is not None:
            out.append(cls(-1, "", usage=usage))
        return out


@dataclass(frozen=True)
class Model:
    id: str
    owned_by: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse_list(cls, data: dict[str, Any]) -> list[Model]:
        return [cls(str(m["id"]), m.get("owned_by"), m) for m in data.get("data") or []]
