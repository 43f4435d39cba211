"""mixtral-chat's line editor, driven through prompt_toolkit's pipe input as keys a person types:
multi-line messages, editing, history written to its file and recalled by a later run; and plain
lines when stdin is not a terminal."""

from __future__ import annotations

import io
import stat
import sys
from pathlib import Path

import pytest

from clients import chat_cli
from clients.chat_input import default_history_file, line_reader, prompt_session

pytest.importorskip("prompt_toolkit")

from prompt_toolkit.input import create_pipe_input  # noqa: E402
from prompt_toolkit.output import DummyOutput  # noqa: E402

ENTER = "\r"
ALT_ENTER = "\x1b\r"
UP = "\x1b[A"
LEFT = "\x1b[D"


def typed(history: Path | None, keys: str) -> str:
    """What one prompt returns after `keys`, on a fresh editor (a new run of mixtral-chat)."""
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        return prompt_session(history, input=pipe, output=DummyOutput()).prompt()


def test_alt_enter_starts_a_new_line_and_enter_sends(tmp_path: Path) -> None:
    assert typed(tmp_path / "h", f"first line{ALT_ENTER}second line{ENTER}") == "first line\nsecond line"


def test_arrow_keys_edit_rather_than_print_escape_codes(tmp_path: Path) -> None:
    assert typed(tmp_path / "h", f"helo{LEFT}l{ENTER}") == "hello"


def test_history_is_written_and_recalled_by_the_next_run(tmp_path: Path) -> None:
    history = tmp_path / "state" / "mixtral-chat" / "history"
    assert typed(history, f"What is MoE?{ENTER}") == "What is MoE?"
    assert typed(history, f"two{ALT_ENTER}lines{ENTER}") == "two\nlines"
    assert "+What is MoE?" in history.read_text()
    assert stat.S_IMODE(history.stat().st_mode) == 0o600  # it holds what was asked
    assert stat.S_IMODE(history.parent.stat().st_mode) == 0o700
    # A later run: Up once is the last message (both lines), twice the one before.
    assert typed(history, f"{UP}{ENTER}") == "two\nlines"
    assert typed(history, f"{UP}{UP}{UP}{ENTER}") == "What is MoE?"


def test_without_a_history_file_nothing_is_kept(tmp_path: Path) -> None:
    assert typed(None, f"secret{ENTER}") == "secret"
    assert typed(None, f"{UP}{ENTER}") == ""
    assert list(tmp_path.iterdir()) == []


def test_the_history_lives_under_the_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_history_file() == tmp_path / "mixtral-chat" / "history"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_history_file() == tmp_path / "home" / ".local" / "state" / "mixtral-chat" / "history"
    assert chat_cli.build_parser().parse_args([]).history_file == default_history_file()


def test_a_pipe_is_read_a_line_a_message_without_the_editor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("one\ntwo\n"))
    read, editing = line_reader(tmp_path / "h")
    assert not editing
    assert [read(), read()] == ["one", "two"]
    with pytest.raises(EOFError):
        read()
    assert not (tmp_path / "h").exists()  # nothing from a pipe goes into the history
