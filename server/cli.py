"""`mixtral-serve` / `python -m server`: flags generated from Settings (pydantic-settings' CLI source).

Precedence: command-line flag, then MIXTRAL_* environment variable, then the default.

Exit status: 0 after a clean stop (SIGTERM/SIGINT, open requests drained), 1 when the engine died
(a supervisor should start a new server), 3 when the server failed to start.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import uvicorn
from pydantic_settings import CliSettingsSource

from server.app import create_app
from server.config import Settings
from server.engine import default_api_server_count
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


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_settings(argv)
    configure_logging(settings.log_level)
    count = settings.api_server_count or default_api_server_count()
    if count > 1:
        serve_multiprocess(settings, count)
        return
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    sys.exit(serve(app.state.lifecycle, config))


if __name__ == "__main__":
    main()
