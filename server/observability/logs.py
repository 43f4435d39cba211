"""Log output: one line per record, JSON or text, on stderr, for every logger.

JSON whenever stderr is not a terminal, because such logs are read by machines first (Loki,
Elasticsearch, CloudWatch, `jq`): each field can be queried without a parsing rule that breaks when
a message changes. Plain text when stderr is a terminal: there a person reads them (`make serve`).
`--log-format json|text` overrides the guess (a terminal that is recorded, a collector on a pty).

The JSON encoding is python-json-logger's: well kept, used by vLLM itself for its own JSON logs, and
it handles extras, exceptions and non-JSON values, which a small Formatter here would re-implement.
Every record made while a request is handled carries that request's id (a handler filter reads it
from server/observability/request_context.py), so an error logged deep in a handler can be found by the id the
client saw in X-Request-Id.

Uvicorn is told not to configure logging (its records reach the root handler here, in the same
format) and not to write its access log: server/observability/access_log.py writes the one line per request.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

from server.config import LogFormat, Settings
from server.engine.logs import use_json_logs as use_json_engine_logs
from server.observability import request_context

_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
_RENAMED = {
    "asctime": "time",
    "levelname": "level",
    "name": "logger",
    "process": "pid",
    "vllm_process_name": "process",  # vLLM's record factory adds it: EngineCore_DP0, Worker_TP1, ...
}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# uvicorn adds color_message (the message with terminal colour codes) to some records: not for a log.
_DROPPED = ["color_message"]
_STANDARD_ATTRS = frozenset([*RESERVED_ATTRS, *_DROPPED]) | {"message", "asctime", "vllm_process_name"}


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, pid, message, then any extras
    (request_id, the access line's fields) and exc_info. Also named in vLLM's logging config
    (server/engine/logs.py), so the engine's processes write the same shape."""

    def __init__(self) -> None:
        super().__init__(
            _JSON_FIELDS,
            rename_fields=_RENAMED,
            reserved_attrs=[*RESERVED_ATTRS, *_DROPPED],
            json_ensure_ascii=False,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """The classic line, with the record's extras appended as key=value (the access line's fields)."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        # Private attributes are other libraries' bookkeeping (Ray's record factory adds
        # _ray_timestamp_ns to every record once it is imported), not fields of the line.
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")
        }
        if not extras:
            return line
        return line + " " + " ".join(f"{k}={_text_value(v)}" for k, v in extras.items())


def _text_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to every record made while that request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = request_context.current_request_id()
            if request_id is not None:
                record.request_id = request_id
        return True


def resolve_format(log_format: LogFormat, stream: TextIO | None = None) -> Literal["json", "text"]:
    """`auto` becomes text when `stream` (stderr by default) is a terminal, json otherwise."""
    if log_format != "auto":
        return log_format
    stream = sys.stderr if stream is None else stream
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # no isatty, or a closed stream: no person reads it
        return "json"


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if resolve_format(log_format) == "json" else TextFormatter()


def configure_logging(log_format: LogFormat, level: str) -> None:
    """The root logger writes every record to stderr in `log_format`; replaces earlier handlers,
    so that calling it again (each front-end process does) never doubles a line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def configure_for(settings: Settings) -> None:
    """Our records, uvicorn's and (in JSON) vLLM's in one format; called before vLLM is imported."""
    configure_logging(settings.log_format, settings.log_level)
    if resolve_format(settings.log_format) == "json":
        use_json_engine_logs(settings.cache_dir / "logging", settings.log_level)


def uvicorn_logging(level: str) -> dict[str, Any]:
    """uvicorn.run / uvicorn.Config arguments: its records go through the root handler above, and
    its access log is off (server/observability/access_log.py writes ours)."""
    return {"log_config": None, "log_level": level, "access_log": False}
