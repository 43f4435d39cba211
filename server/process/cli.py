"""`mixtral-serve` / `python -m server`: flags generated from Settings (pydantic-settings' CLI source).

Precedence: command-line flag, then MIXTRAL_* environment variable, then the default.

Exit status: 0 after a clean stop (SIGTERM/SIGINT, open requests drained), 1 when the engine died
(a supervisor should start a new server), 2 for flags that are unknown, out of range or do not go
together, 3 when the server failed to start. `mixtral-serve quantize ...` is the checkpoint
quantizer instead (server/process/quantize_cli.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_settings import CliSettingsSource

from server.app import create_app
from server.config import Settings
from server.engine import default_api_server_count, run_headless
from server.http.deps import app_state
from server.observability import logs
from server.process.frontends import serve_multiprocess
from server.process.quantize_cli import main as quantize_main
from server.process.serve import exit_now, serve, uvicorn_config


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    source: CliSettingsSource[Settings] = CliSettingsSource(
        Settings,
        cli_prog_name="mixtral-serve",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_enforce_required=False,
        cli_avoid_json=True,
    )
    args = list(sys.argv[1:] if argv is None else argv)
    return Settings(_cli_settings_source=source(args=args))


def flag_errors(exc: ValidationError) -> str:
    """Settings' validation errors as one line, each named by its flag where it has one."""
    reasons = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        field = str(error["loc"][0]) if error["loc"] else None
        reasons.append(f"--{field.replace('_', '-')}: {message}" if field else message)
    return "; ".join(reasons)


def front_end_count(settings: Settings) -> int:
    """--api-server-count, else the hardware's default; one with --allow-runtime-lora (adapters
    loaded at run time live in one process's registry; Settings refuses an explicit count above 1)."""
    if settings.allow_runtime_lora:
        return 1
    return settings.api_server_count or default_api_server_count()


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["quantize"]:  # `mixtral-serve quantize SRC DST`: a tool, no server
        sys.exit(quantize_main(args[1:]))
    try:
        settings = parse_settings(args)
    except ValidationError as exc:  # flags that parse but do not go together, or out of range
        sys.stderr.write(f"mixtral-serve: error: {flag_errors(exc)}\n")
        sys.exit(2)
    logs.configure_for(settings)
    if settings.headless:  # a node above 0 of a multi-node engine: its ranks only, no HTTP
        exit_now(run_headless(settings))
    count = front_end_count(settings)
    if count > 1:
        try:
            status = serve_multiprocess(settings, count)
        except SystemExit as stop:  # a signal ends the supervisor's wait this way (vllm_frontends.py)
            if stop.code:
                raise
            status = 0
        exit_now(status)
    app = create_app(settings)
    config = uvicorn_config(app, settings, host=settings.host, port=settings.port)
    exit_now(serve(app_state(app).lifecycle, config))


if __name__ == "__main__":
    main()
