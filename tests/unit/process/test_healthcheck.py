"""`python -m server.process.healthcheck` (the image's and compose's health check): exit 0 only on a 200
from /health at the port the settings name."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from server.config import Settings
from server.process.healthcheck import healthy, probe_url


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    httpd = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        _Health.status = 200


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8000/health"),
        ("::", "http://127.0.0.1:8000/health"),
        ("10.1.2.3", "http://10.1.2.3:8000/health"),
        ("::1", "http://[::1]:8000/health"),
    ],
)
def test_a_wildcard_listen_address_is_probed_on_loopback(host: str, url: str) -> None:
    assert probe_url(Settings(host=host, port=8000)) == url


def test_200_is_healthy_503_and_a_closed_port_are_not(server: HTTPServer) -> None:
    url = f"http://127.0.0.1:{server.server_port}/health"
    assert healthy(url)
    _Health.status = 503
    assert not healthy(url)
    server.shutdown()
    server.server_close()
    assert not healthy(url, timeout=1)


def test_the_module_exits_by_the_port_in_the_environment(server: HTTPServer) -> None:
    def run(port: int) -> int:
        env = {"MIXTRAL_HOST": "0.0.0.0", "MIXTRAL_PORT": str(port), "PATH": ""}
        return subprocess.run(
            [sys.executable, "-m", "server.process.healthcheck"], env=env, timeout=60
        ).returncode

    assert run(server.server_port) == 0
    _Health.status = 503
    assert run(server.server_port) == 1
