"""One plain `mixtral-serve` for the e2e modules that need nothing else of it (the SDKs, our
clients, the chat page): a server start costs about 30 s on two cores, so they share one. Modules
that signal, drain, kill or configure their server start their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.server_process import running_server


@pytest.fixture(scope="session")
def shared_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Its log is e2e*/server.log under pytest's base temp (test_openai_sdk reads it)."""
    log = tmp_path_factory.mktemp("e2e") / "server.log"
    with running_server("--max-model-len", "2048", log=log) as url:
        yield url
