"""GET /: the browser chat page, one static HTML file shipped inside the package.

Plain HTML and JS with no build step and nothing fetched from elsewhere, so it works offline and
behind any proxy that passes /v1. It uses the same public API as every other client; the page
itself needs no API key, the API calls it makes do when the server asks for one.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["page"])


@cache
def _page() -> str:
    return files("server.http").joinpath("static", "chat.html").read_text(encoding="utf-8")


@router.get("/", include_in_schema=False)
async def chat_page() -> HTMLResponse:
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})
