"""The browser chat page at "/" in headless Chromium against a real server: a message goes in,
the answer streams out piece by piece, the conversation is kept, tokens/s is shown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import chromium
from tests.e2e.server_process import running_server

pytestmark = pytest.mark.engine

STATS = re.compile(r"^(\d+) tokens in [\d.]+ s · [\d.]+ tok/s · first token after [\d.]+ s$")
# Counts how often the newest assistant bubble changes, to tell a stream from one late answer.
COUNT_UPDATES = """() => {
  window.bubbleUpdates = 0;
  new MutationObserver(() => { window.bubbleUpdates += 1; })
    .observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server_url(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Asks for the browser first: without one there is no point starting a server."""
    log = tmp_path_factory.mktemp("page") / "server.log"
    with running_server("--max-model-len", "2048", log=log) as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        yield context.new_page()
    finally:
        context.close()


def chat_bodies(page: Any) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: bodies.append(r.post_data_json) if r.url.endswith("/v1/chat/completions") else None,
    )
    return bodies


def send(page: Any, text: str, answers: int) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")
    page.wait_for_function(f"document.querySelectorAll('.stats').length === {answers}", timeout=120_000)


def test_page_streams_an_answer_and_keeps_the_conversation(
    server_url: str, page: Any, tmp_path: Path
) -> None:
    bodies = chat_bodies(page)
    page.goto(server_url + "/")
    page.wait_for_function("document.getElementById('model').textContent === 'tiny-mixtral'")
    page.fill("#max-tokens", "24")
    page.fill("#system", "Be brief.")
    page.evaluate(COUNT_UPDATES)

    send(page, "Hello! Who are you?", answers=1)
    first_answer = page.locator(".assistant").nth(0).text_content()
    assert first_answer
    assert page.evaluate("window.bubbleUpdates") > 3  # the text arrived in pieces, not at once
    stats = STATS.match(page.locator(".stats").nth(0).text_content() or "")
    assert stats and int(stats.group(1)) <= 24

    send(page, "Tell me more.", answers=2)
    page.screenshot(path=str(tmp_path / "chat-page.png"))
    assert bodies[0]["stream"] is True and bodies[0]["max_tokens"] == 24
    assert bodies[1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello! Who are you?"},
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": "Tell me more."},
    ]
    assert page.locator(".user").all_text_contents() == ["Hello! Who are you?", "Tell me more."]
    assert page.locator(".error").count() == 0

    page.click("#reset")
    assert page.locator(".message").count() == 0
    send(page, "Fresh start", answers=1)
    assert [m["role"] for m in bodies[2]["messages"]] == ["system", "user"]
