"""Which log format the server writes: text when a person watches stderr, JSON for a collector,
and --log-format (or MIXTRAL_LOG_FORMAT) over the guess."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.engine.logs import CONFIG_PATH_ENV
from server.observability.logs import configure_for, resolve_format
from server.process.cli import parse_settings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_for replaces the root handlers (pytest's own among them): put them back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def logged_line(
    stderr: io.StringIO, flags: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """Configures the server's logging from `flags` with `stderr` in place, and logs one record."""
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.delenv(CONFIG_PATH_ENV, raising=False)
    monkeypatch.delenv("VLLM_CONFIGURE_LOGGING", raising=False)
    configure_for(parse_settings(["--cache-dir", str(tmp_path), *flags]))
    logging.getLogger("server.test").info("started", extra={"port": 8000})
    return stderr.getvalue().strip()


@pytest.mark.usefixtures("root_logging")
def test_a_terminal_gets_plain_text_and_vllm_keeps_its_own_lines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    line = logged_line(Terminal(), [], monkeypatch, tmp_path)
    assert line.endswith(" INFO server.test: started port=8000"), line
    assert CONFIG_PATH_ENV not in os.environ  # vLLM's records are not turned into JSON


@pytest.mark.usefixtures("root_logging")
def test_a_pipe_gets_json_and_so_do_vllms_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    line = json.loads(logged_line(Pipe(), [], monkeypatch, tmp_path))
    assert line["message"] == "started" and line["port"] == 8000 and line["level"] == "INFO"
    assert Path(os.environ[CONFIG_PATH_ENV]).is_file()


@pytest.mark.usefixtures("root_logging")
def test_the_flag_overrides_the_guess(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    line = logged_line(Terminal(), ["--log-format", "json"], monkeypatch, tmp_path)
    assert json.loads(line)["port"] == 8000
    line = logged_line(Pipe(), ["--log-format", "text"], monkeypatch, tmp_path)
    assert line.endswith(" INFO server.test: started port=8000"), line


@pytest.mark.usefixtures("root_logging")
def test_the_variable_overrides_the_guess(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIXTRAL_LOG_FORMAT", "text")
    assert logged_line(Pipe(), [], monkeypatch, tmp_path).endswith("server.test: started port=8000")


def test_a_stream_that_cannot_say_is_not_a_terminal() -> None:
    closed = io.StringIO()
    closed.close()  # isatty on a closed stream raises ValueError
    assert resolve_format("auto", closed) == "json"
    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("text", Pipe()) == "text"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValidationError, match="log_format"):
        parse_settings(["--log-format", "yaml"])
