"""GET / serves the browser chat page from the package, self-contained, beside the API."""

from __future__ import annotations

import re

import httpx


async def test_root_serves_the_chat_page(client: httpx.AsyncClient) -> None:
    resp = await client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    html = resp.text
    for element in ('id="prompt"', 'id="send"', 'id="messages"', 'id="api-key"', "/v1/chat/completions"):
        assert element in html
    # Nothing fetched from elsewhere: no external scripts, styles, fonts or images.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


async def test_the_page_is_not_part_of_the_api_schema_and_the_api_is_unchanged(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths and "/v1/chat/completions" in paths
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/v1/models")).json()["data"][0]["id"] == "tiny-mixtral"
