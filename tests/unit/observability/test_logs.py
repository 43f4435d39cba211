"""Log settings and where each logger's records go: ours, uvicorn's and vLLM's, one format."""

from __future__ import annotations

import json
import logging
import logging.config
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from pydantic import ValidationError

from server.engine import logs as engine_logs
from server.observability import request_context
from server.observability.logs import JsonFormatter, configure_logging, uvicorn_logging
from server.observability.request_context import RequestContext
from server.process.cli import parse_settings


def test_logs_guess_their_format_without_content_and_no_cors_by_default() -> None:
    settings = parse_settings([])
    assert settings.log_format == "auto"
    assert settings.log_request_content is False
    assert settings.cors_allow_origins == []
    assert settings.cors_allow_credentials is False


def test_cors_lists_from_flags_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXTRAL_CORS_ALLOW_METHODS", "GET, POST")
    settings = parse_settings(
        ["--cors-allow-origins", "https://a.example,https://b.example", "--log-format", "text"]
    )
    assert settings.cors_allow_origins == ["https://a.example", "https://b.example"]
    assert settings.cors_allow_methods == ["GET", "POST"]
    assert settings.log_format == "text"


def test_credentials_for_any_origin_are_refused() -> None:
    with pytest.raises(ValidationError, match="cors-allow-credentials"):
        parse_settings(["--cors-allow-origins", "*", "--cors-allow-credentials"])


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """configure_logging replaces the root handlers (pytest's own among them): put them back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def test_configuring_twice_leaves_one_handler(root_logging: logging.Logger) -> None:
    configure_logging("json", "info")
    configure_logging("json", "warning")
    assert len(root_logging.handlers) == 1
    assert isinstance(root_logging.handlers[0].formatter, JsonFormatter)
    assert root_logging.level == logging.WARNING


def test_records_in_a_request_carry_its_id(
    root_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    with request_context.opened(RequestContext("req-42")):
        logging.getLogger("server.somewhere").warning("inside")
    logging.getLogger("server.somewhere").warning("outside", extra={"color_message": "\x1b[1mx"})
    inside, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert inside["request_id"] == "req-42" and inside["message"] == "inside"
    assert "request_id" not in outside and "color_message" not in outside


def test_uvicorn_writes_no_access_log_and_its_errors_reach_our_handler(
    root_logging: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a fresh server process: no handlers on uvicorn's loggers yet (tests that ran uvicorn or
    # captured its logs before this one may have left some; monkeypatch puts them back afterwards).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
    config = uvicorn.Config("server.app:create_app", **uvicorn_logging("info"))
    config.configure_logging()
    access = logging.getLogger("uvicorn.access")
    assert access.handlers == [] and access.propagate is False
    error = logging.getLogger("uvicorn.error")
    assert error.propagate and not error.handlers and not logging.getLogger("uvicorn").handlers


def test_vllm_logging_config_writes_our_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = engine_logs.write_vllm_logging_config(tmp_path, "info")
    config = json.loads(path.read_text())
    config["loggers"] = {"test.vllm-json": config["loggers"]["vllm"]}  # leave vLLM's logger alone
    logging.config.dictConfig(config)
    logging.getLogger("test.vllm-json").info("engine says %d", 42)
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"], record["message"]) == (
        "INFO",
        "test.vllm-json",
        "engine says 42",
    )


def test_an_operators_vllm_logging_config_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """monkeypatch took the variable first, so it is put back as it was after the test."""
    monkeypatch.setenv(engine_logs.CONFIG_PATH_ENV, "/etc/their-logging.json")
    engine_logs.use_json_logs(tmp_path, "info")
    assert os.environ[engine_logs.CONFIG_PATH_ENV] == "/etc/their-logging.json"
    assert not list(tmp_path.iterdir())
    monkeypatch.delenv(engine_logs.CONFIG_PATH_ENV)
    engine_logs.use_json_logs(tmp_path, "info")
    assert Path(os.environ[engine_logs.CONFIG_PATH_ENV]).is_file()
