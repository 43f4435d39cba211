"""`python -m server.process.healthcheck`: exit 0 if this container's server answers /health with 200.

The Docker image's HEALTHCHECK and the compose file run it. It reads the port from the same
Settings as the server (MIXTRAL_PORT), so a port changed through the environment cannot leave the
check probing the old one, and it needs only the standard library beside them (no curl in images).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from server.config import Settings

HEALTH_PATH = "/health"
TIMEOUT_S = 5.0


def probe_url(settings: Settings) -> str:
    """The server's own address; a wildcard listen address is probed on loopback."""
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}{HEALTH_PATH}"


def healthy(url: str, timeout: float = TIMEOUT_S) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main() -> None:
    sys.exit(0 if healthy(probe_url(Settings())) else 1)


if __name__ == "__main__":
    main()
