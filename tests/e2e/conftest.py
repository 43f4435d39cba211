"""Servers the e2e modules share: a server start costs about 30 s on two cores.

- One plain `mixtral-serve` for the modules that need nothing else of it (the SDKs, our clients, the
  chat page).
- One with two front ends and the load-fault limits, for test_frontends and test_load_faults (which
  starts its one-front-end twin itself); the latter's drain test stops it, as the last that uses it.
Modules that signal, kill or configure their server otherwise start their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.server_process import ServerProcess, layout_server, running_server


@pytest.fixture(scope="session")
def shared_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Its log is e2e*/server.log under pytest's base temp (test_openai_sdk reads it)."""
    log = tmp_path_factory.mktemp("e2e") / "server.log"
    with running_server("--max-model-len", "2048", log=log) as url:
        yield url


@pytest.fixture(scope="session")
def two_front_end_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("layout-2") / "server.log"
    with layout_server(2, log) as started:
        yield started


@pytest.fixture
def two_front_ends(two_front_end_server: ServerProcess) -> ServerProcess:
    """The shared two-front-end server, still running (only the drain test, last, may stop it)."""
    assert two_front_end_server.proc.poll() is None, "the shared 2-front-end server was stopped early"
    return two_front_end_server
