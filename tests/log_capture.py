"""Every log record made while a block runs, from every logger, at every level.

A handler on the root logger sees what propagates; vLLM's "vllm" logger does not propagate (vLLM
gives it its own handler), so the handler goes on it too. Levels are opened to DEBUG for the block.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from server.observability.logs import JsonFormatter, RequestIdFilter, TextFormatter

ACCESS_LOGGER = "server.access"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def access(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name == ACCESS_LOGGER]

    def rendered(self) -> list[str]:
        """Each record as both formatters write it, and its raw parts: all a log could hold."""
        out: list[str] = []
        for formatter in (JsonFormatter(), TextFormatter()):
            out.extend(formatter.format(r) for r in self.records)
        out.extend(repr(r.__dict__) for r in self.records)
        return out


@contextmanager
def captured_logs() -> Iterator[Capture]:
    capture = Capture()
    loggers = [logging.getLogger(), logging.getLogger("vllm")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(capture)
            lg.setLevel(level)
