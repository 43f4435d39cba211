"""The browser chat page at "/" in headless Chromium against a real server: a message goes in,
the answer streams out piece by piece, the conversation is kept, tokens/s is shown; it fits a phone
and a desktop, asks the server for no favicon, and a failed request leaves an error with a Retry
button, not an empty answer, and is not sent again as history; on a server with API keys the page
asks for one, asks again while it is refused, and keeps the one that works."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import chromium
from tests.e2e.server_process import running_server

STATS = re.compile(r"^(\d+) tokens in [\d.]+ s · [\d.]+ tok/s · first token after [\d.]+ s$")
# Counts how often the newest assistant bubble changes, to tell a stream from one late answer.
# Counts each change of an answer bubble's text. A MutationObserver's callback runs once for all
# the changes of one task, and a slow machine can hand the page several streamed events in one read,
# so the records are counted, not the callbacks.
COUNT_UPDATES = """() => {
  window.bubbleUpdates = 0;
  new MutationObserver((records) => {
    window.bubbleUpdates += records.filter((r) => r.target.classList?.contains('assistant')).length;
  }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""
# Counts how often the key dialog opens from now on.
COUNT_KEY_ASKS = """() => {
  window.keyAsks = 0;
  const dialog = document.getElementById('key-dialog');
  new MutationObserver(() => { if (dialog.classList.contains('open')) window.keyAsks += 1; })
    .observe(dialog, {attributes: true, attributeFilter: ['class']});
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server_url(browser: Any, shared_server_url: str) -> str:
    """Asks for the browser first: without one there is no point starting a server."""
    return shared_server_url


@pytest.fixture(scope="module")
def server_log(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared server's log (tests/e2e/conftest.py)."""
    logs = {log.resolve() for log in Path(tmp_path_factory.getbasetemp()).glob("e2e*/server.log")}
    assert len(logs) == 1  # e2e0 and its "e2ecurrent" link are one
    return logs.pop()


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


def not_found_lines(log: Path, start: int) -> list[dict[str, Any]]:
    """The access lines of 404s written since byte `start` (a favicon the page lacks is one)."""
    with log.open("rb") as f:
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return [r for r in records if r.get("status") == 404]


SYSTEM = "Answer in one short sentence, please, and nothing else at all."


@pytest.mark.parametrize("viewport", [(390, 844), (1280, 800)], ids=["phone", "desktop"])
def test_page_fits_the_screen_and_a_failed_request_leaves_an_error_to_retry(
    browser: Any, server_url: str, server_log: Path, viewport: tuple[int, int], tmp_path: Path
) -> None:
    """A refused request (temperature 5 is a 400) shows its error and a Retry button in place of the
    answer: no empty bubble, no "0 tokens" line, and the next message does not carry the failed
    turn; Retry sends it again, once. Nothing scrolls sideways, on a phone either."""
    width, height = viewport
    log_start = server_log.stat().st_size
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        bodies = chat_bodies(page)
        page.goto(server_url + "/")
        page.wait_for_function("document.getElementById('model').textContent === 'tiny-mixtral'")
        page.fill("#max-tokens", "8")
        page.fill("#system", SYSTEM)
        fits = "document.documentElement.scrollWidth <= window.innerWidth"
        assert page.evaluate(fits), page.evaluate("document.documentElement.scrollWidth")

        page.fill("#temperature", "5")
        page.fill("#prompt", "First question")
        page.press("#prompt", "Enter")
        page.wait_for_selector(".error .retry")
        assert "temperature" in (page.text_content(".error span") or "")
        assert page.locator(".assistant").count() == 0 and page.locator(".stats").count() == 0

        page.fill("#temperature", "0")
        send(page, "Second question", answers=1)  # instead of a retry: the failed turn stays out
        assert page.locator(".retry").count() == 0  # only the last turn can be retried
        second_answer = page.locator(".assistant").nth(0).text_content()
        assert second_answer
        system = {
            "role": "system",
            "content": "Answer in one short sentence, please, and nothing else at all.",
        }
        assert bodies[1]["messages"] == [system, {"role": "user", "content": "Second question"}]

        page.fill("#temperature", "5")
        page.fill("#prompt", "Third question")
        page.press("#prompt", "Enter")
        page.wait_for_selector(".error .retry")
        page.screenshot(path=str(tmp_path / f"chat-page-error-{width}.png"))
        assert page.evaluate(fits)
        page.fill("#temperature", "0")
        page.click(".retry")
        page.wait_for_function("document.querySelectorAll('.stats').length === 2", timeout=120_000)
        assert bodies[3]["messages"] == [
            system,
            {"role": "user", "content": "Second question"},
            {"role": "assistant", "content": second_answer},
            {"role": "user", "content": "Third question"},
        ]
        assert len(bodies) == 4
        assert page.locator(".error").count() == 1  # the first failure's, which was never retried
        assert page.locator(".assistant").count() == 2 and all(page.locator(".assistant").all_text_contents())
        page.screenshot(path=str(tmp_path / f"chat-page-{width}.png"))
        assert page.evaluate(fits)
    finally:
        context.close()
    assert not_found_lines(server_log, log_start) == []  # no /favicon.ico asked for


def chat_authorizations(page: Any) -> list[str | None]:
    sent: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            sent.append(r.headers.get("authorization")) if r.url.endswith("/v1/chat/completions") else None
        ),
    )
    return sent


def give_key(page: Any, key: str) -> None:
    """As a user does: type it into the dialog and press its button (the dialog closes at once)."""
    page.fill("#api-key", key)
    page.click("#save-key")


def wait_for_key_ask(page: Any, asks: int) -> str:
    """Waits until the dialog has opened `asks` times since COUNT_KEY_ASKS; returns its reason."""
    page.wait_for_function(f"window.keyAsks === {asks}", timeout=30_000)
    assert page.locator("#key-dialog").is_visible()
    return page.text_content("#key-reason") or ""


def tab_stops(page: Any, presses: int) -> list[str]:
    stops = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        stops.append(page.evaluate("document.activeElement.id"))
    return stops


def test_page_asks_for_a_key_again_while_it_is_refused_and_reuses_the_one_that_works(
    browser: Any, page: Any, tmp_path: Path
) -> None:
    """First the model list asks for the key as the page opens; later the key the tab keeps goes
    stale (as when the server's keys change: here the tab's stored key is replaced by one the
    server never had, which it refuses the same way, so one server start does), and a message
    asks again."""
    sent = chat_authorizations(page)
    bodies = chat_bodies(page)

    with running_server("--max-model-len", "2048", "--api-keys", "good-key", log=tmp_path / "a.log") as url:
        page.goto(url + "/")
        page.wait_for_selector("#key-dialog.open")
        assert page.text_content("#key-reason") == (
            "Missing API key. Send it as the header 'Authorization: Bearer YOUR_KEY'."
        )
        # Nothing behind the dialog takes the keyboard: a message sent from there used to take the
        # place of the model list's retry, and the model name never appeared.
        assert "prompt" not in tab_stops(page, 9)
        page.evaluate(COUNT_KEY_ASKS)

        give_key(page, "wrong-key")
        assert wait_for_key_ask(page, 1) == "Incorrect API key provided."
        assert page.text_content("#model") == "connecting…"

        give_key(page, "good-key")
        page.wait_for_function("document.getElementById('model').textContent === 'tiny-mixtral'")
        page.fill("#max-tokens", "24")
        send(page, "Hello!", answers=1)
        send(page, "And again.", answers=2)
        assert sent == ["Bearer good-key", "Bearer good-key"]
        assert page.evaluate("window.keyAsks") == 1

        page.evaluate("sessionStorage.setItem('mixtral-serve.api-key', 'revoked-key')")
        page.evaluate(COUNT_UPDATES)
        page.fill("#prompt", "Still there?")
        page.press("#prompt", "Enter")
        assert wait_for_key_ask(page, 2) == "Incorrect API key provided."

        give_key(page, "typo")
        assert wait_for_key_ask(page, 3) == "Incorrect API key provided."
        assert page.locator(".assistant").nth(2).text_content() == ""  # no answer, no stats
        assert page.locator(".stats").count() == 2
        assert page.locator(".error").count() == 0

        page.evaluate("window.bubbleUpdates = 0")
        give_key(page, "good-key")
        page.wait_for_function("document.querySelectorAll('.stats').length === 3", timeout=120_000)
        assert not page.locator("#key-dialog").is_visible()
        assert page.locator(".assistant").nth(2).text_content()
        assert page.evaluate("window.bubbleUpdates") > 3  # streamed in pieces

        send(page, "One more.", answers=4)  # the key is kept: no dialog this time
        page.screenshot(path=str(tmp_path / "chat-page-key.png"))
        assert page.evaluate("window.keyAsks") == 3
        assert (
            sent == ["Bearer good-key"] * 2 + ["Bearer revoked-key", "Bearer typo"] + ["Bearer good-key"] * 2
        )
        # The retried request carries the conversation once, not the refused turn twice.
        assert [m["content"] for m in bodies[4]["messages"] if m["role"] == "user"] == [
            "Hello!",
            "And again.",
            "Still there?",
        ]
        assert page.locator(".user").all_text_contents() == [
            "Hello!",
            "And again.",
            "Still there?",
            "One more.",
        ]
        assert page.locator(".error").count() == 0
