"""An idle keep-alive connection outlives the pools of common clients: uvicorn's (and vLLM's) 5 s
made `vllm bench serve` (aiohttp, 60 s pool) reuse connections the server had closed, losing
requests (ServerDisconnectedError) and stalling others 5 s. Checked on a raw socket, in the
one-process server and in a front end of the several-process layout."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from tests.e2e.server_process import ServerProcess

IDLE_S = 6.0  # past the old 5 s


def get_health(sock: socket.socket, host: str) -> bytes:
    sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data  # the server closed the connection
        data += chunk
    return data


def assert_connection_survives_idle(url: str) -> None:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        assert get_health(sock, parts.netloc).startswith(b"HTTP/1.1 200")
        time.sleep(IDLE_S)
        assert get_health(sock, parts.netloc).startswith(b"HTTP/1.1 200"), "closed while idle"


def test_an_idle_connection_stays_open_past_five_seconds(shared_server_url: str) -> None:
    assert_connection_survives_idle(shared_server_url)


def test_a_front_end_of_several_keeps_it_open_too(two_front_ends: ServerProcess) -> None:
    assert_connection_survives_idle(two_front_ends.url)
