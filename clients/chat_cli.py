"""`mixtral-chat`: a terminal chat that streams the answer as it is generated.

The conversation is kept and sent whole each turn (the server renders it as Mixtral's [INST]
turns); `/reset` starts over (keeping the system prompt), `/exit` or Ctrl-D leaves, Ctrl-C stops an
answer mid-way. After each answer: tokens, tokens per second and the time to the first token. At a
terminal the message is typed in a line editor with history across runs and multi-line input
(clients/chat_input.py); from a pipe each line is one message.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clients.chat_input import KEYS_HINT, default_history_file, line_reader
from clients.client import Client
from clients.errors import ClientError
from clients.protocol import DEFAULT_BASE_URL, Message
from clients.types import Usage


@dataclass(frozen=True)
class AnswerStats:
    tokens: int
    seconds: float
    ttft_s: float | None
    prompt_tokens: int | None = None  # the whole conversation as the server counted it

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        first = f", first token after {self.ttft_s:.2f} s" if self.ttft_s is not None else ""
        return f"[{self.tokens} tokens in {self.seconds:.2f} s, {self.tokens_per_s:.1f} tok/s{first}]"


class ChatSession:
    """The conversation so far, and one method to add a turn to it."""

    def __init__(self, client: Client, system: str | None = None, **params: object) -> None:
        self.client = client
        self.system = system
        self.params = params
        self.messages: list[Message] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def ask(self, text: str, on_text: Callable[[str], None]) -> AnswerStats:
        """Streams the answer into `on_text`. A failed request leaves the conversation as it was;
        an interrupted one keeps the part that arrived."""
        self.messages.append({"role": "user", "content": text})
        start = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        usage: Usage | None = None
        try:
            for delta in self.client.chat_stream(self.messages, **self.params):
                usage = delta.usage or usage
                if delta.text:
                    first = first if first is not None else time.perf_counter()
                    pieces.append(delta.text)
                    on_text(delta.text)
        except ClientError:
            self.messages.pop()
            raise
        except KeyboardInterrupt:
            pass
        self.messages.append({"role": "assistant", "content": "".join(pieces)})
        return AnswerStats(
            tokens=usage.completion_tokens if usage is not None else len(pieces),
            seconds=time.perf_counter() - start,
            ttft_s=None if first is None else first - start,
            prompt_tokens=usage.prompt_tokens if usage is not None else None,
        )


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _turn(session: ChatSession, line: str) -> bool:
    """One line of input; False when the user asked to leave."""
    command = line.strip()
    if command in ("/exit", "/quit"):
        return False
    if command == "/reset":
        session.reset()
        print("(conversation cleared)")
        return True
    if not command:
        return True
    _write("assistant> ")
    try:
        stats = session.ask(line, _write)
    except ClientError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return True
    print(f"\n{stats.line()}")
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixtral-chat", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url", default=os.environ.get("MIXTRAL_BASE_URL", DEFAULT_BASE_URL), help="%(default)s"
    )
    parser.add_argument("--api-key", help="default: $MIXTRAL_API_KEY")
    parser.add_argument("--model", help="default: the server's first model")
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--seed", type=int)
    history = parser.add_mutually_exclusive_group()
    history.add_argument(
        "--history-file",
        type=Path,
        default=default_history_file(),
        help="messages kept across runs: %(default)s",
    )
    history.add_argument("--no-history", action="store_true", help="keep this run's messages only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    params = {"max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed}
    with Client(args.base_url, args.api_key, model=args.model) as client:
        try:
            model = client.model()
        except ClientError as exc:
            print(f"error: cannot reach {client.base_url}: {exc}", file=sys.stderr)
            return 1
        session = ChatSession(client, args.system, **{k: v for k, v in params.items() if v is not None})
        print(f"chatting with {model} at {client.base_url}; /reset starts over, /exit leaves")
        read, editing = line_reader(None if args.no_history else args.history_file)
        if editing:
            print(KEYS_HINT)
        return _repl(session, read, editing)


def _repl(session: ChatSession, read: Callable[[], str], editing: bool) -> int:
    while True:
        try:
            line = read()
        except KeyboardInterrupt:
            if editing:  # Ctrl-C at the editor drops what was typed, as a shell does
                continue
            print()
            return 0
        except EOFError:
            print()
            return 0
        if not _turn(session, line):
            return 0


if __name__ == "__main__":
    sys.exit(main())
