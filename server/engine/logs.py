"""vLLM's own log records in our JSON format, in every process the engine starts.

vLLM gives its "vllm" logger its own handler (propagate off) in each of its processes: this one, the
engine core, the workers, the front ends. The one hook that reaches all of them is an environment
variable read when each configures its logging, VLLM_LOGGING_CONFIG_PATH: a dictConfig file. Ours
gives the "vllm" logger a stderr handler with server.observability.logs.JsonFormatter, so one log
stream holds one format. Set before vLLM is imported and before its processes start (they inherit
it); an operator's own VLLM_LOGGING_CONFIG_PATH, or VLLM_CONFIGURE_LOGGING=0, wins.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

CONFIG_PATH_ENV = "VLLM_LOGGING_CONFIG_PATH"


def vllm_logging_config(level: str) -> dict[str, object]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "server.observability.logs.JsonFormatter"}},
        "handlers": {
            "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {"vllm": {"handlers": ["json"], "level": level.upper(), "propagate": False}},
    }


def write_vllm_logging_config(directory: Path, level: str) -> Path:
    """Written whole, then renamed into place: servers sharing a cache directory never read half."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"vllm-logging-json-{level.lower()}.json"
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as out:
        json.dump(vllm_logging_config(level), out)
    os.replace(out.name, path)
    return path


def use_json_logs(directory: Path, level: str) -> None:
    if CONFIG_PATH_ENV in os.environ or os.environ.get("VLLM_CONFIGURE_LOGGING") == "0":
        return
    os.environ[CONFIG_PATH_ENV] = str(write_vllm_logging_config(directory, level))
