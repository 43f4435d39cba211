"""SSE framing for every streaming endpoint: data events, an error event if the stream fails after
it started, then `data: [DONE]`.

Disconnect handling lives in sse-starlette, which races the client's disconnect against the body in
one task group: when the client goes, the body is cancelled, the `aclosing` below closes the
event source, and that closes the engine streams, which abort their engine requests at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from sse_starlette import EventSourceResponse

from server.errors import APIError, EngineError, error_body

logger = logging.getLogger(__name__)

PING_SECONDS = 15
DONE = "[DONE]"


async def _frames(events: AsyncGenerator[str, None]) -> AsyncIterator[dict[str, str]]:
    async with contextlib.aclosing(events):
        try:
            async for data in events:
                yield {"data": data}
        except APIError as exc:
            logger.warning("stream ended with an error: %s", exc.message)
            yield {"data": json.dumps(error_body(exc))}
        except Exception:
            logger.exception("stream failed")
            yield {"data": json.dumps(error_body(EngineError("Internal error while streaming.")))}
    yield {"data": DONE}


def sse_response(events: AsyncGenerator[str, None]) -> EventSourceResponse:
    """`events` yields JSON payloads; each becomes one `data:` event."""
    return EventSourceResponse(
        _frames(events),
        sep="\n",
        ping=PING_SECONDS,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
