"""What mixtral-chat reads a message with: a line editor at a terminal, plain lines otherwise.

At a terminal people expect a REPL's keys: arrows and Emacs keys to edit, Up for earlier messages
(this session's and earlier sessions', kept in a file under the user's state directory), and a way
to write more than one line. prompt_toolkit gives all three, and pastes of several lines arrive
whole (bracketed paste) rather than as one message a line; readline would leave multi-line input
and pastes to us and is missing on some Pythons. From a pipe or a file each line is one message,
as before, with no prompt_toolkit in the way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

PROMPT = "you> "
CONTINUATION = "...> "
KEYS_HINT = "Enter sends; Alt+Enter (or Esc, Enter) starts a new line; Up recalls earlier messages"


def default_history_file() -> Path:
    """$XDG_STATE_HOME/mixtral-chat/history, ~/.local/state/... when that is unset (XDG's base
    directory rule for state that outlives a run but is not worth a backup)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "mixtral-chat" / "history"


def prompt_session(
    history_file: Path | None, input: Input | None = None, output: Output | None = None
) -> PromptSession[str]:
    """A line editor whose history is `history_file` (made private: it holds what was asked), or
    this run's only when None."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

    history: History = InMemoryHistory()
    if history_file is not None:
        history_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        history_file.touch(mode=0o600, exist_ok=True)
        history = FileHistory(str(history_file))
    keys = KeyBindings()

    @keys.add("escape", "enter")  # Alt+Enter arrives as Esc, Enter
    def _new_line(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return PromptSession(
        PROMPT,
        history=history,
        key_bindings=keys,
        prompt_continuation=CONTINUATION,
        input=input,
        output=output,
    )


def line_reader(history_file: Path | None) -> tuple[Callable[[], str], bool]:
    """Returns a function that reads one message (EOFError at the end, KeyboardInterrupt on Ctrl-C)
    and whether it is the line editor. The editor only when both ends are a terminal."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        return prompt_session(history_file).prompt, True
    return lambda: input(PROMPT), False
