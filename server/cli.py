"""`mixtral-serve` / `python -m server`: flags generated from Settings (pydantic-settings' CLI source).

Precedence: command-line flag, then MIXTRAL_* environment variable, then the default.

Exit status: 0 after a clean stop (SIGTERM/SIGINT, open requests drained), 1 when the engine died
(a supervisor should start a new server), 3 when the server failed to start.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import uvicorn
from pydantic_settings import CliSettingsSource

from server import logs
from server.app import create_app
from server.config import Settings
from server.engine import default_api_server_count
from server.engine.logs import use_json_logs as use_json_engine_logs
from server.frontends import serve_multiprocess
from server.lifecycle import serve


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


def configure_logging(settings: Settings) -> None:
    """Our records, uvicorn's and (in JSON) vLLM's in one format; called before vLLM is imported."""
    logs.configure_logging(settings.log_format, settings.log_level)
    if settings.log_format == "json":
        use_json_engine_logs(settings.cache_dir / "logging", settings.log_level)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_settings(argv)
    configure_logging(settings)
    count = settings.api_server_count or default_api_server_count()
    if count > 1:
        serve_multiprocess(settings, count)
        return
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, **logs.uvicorn_logging(settings.log_level)
    )
    sys.exit(serve(app.state.lifecycle, config))


if __name__ == "__main__":
    main()
