"""Where per-key limits and usage live, from the settings: a shared Redis, or this host's files.

Redis is imported only when --shared-state names one, so a server on one host never needs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from server.admission.key_limits import KeyLimits
from server.admission.usage import UsageBook
from server.config import Settings
from server.observability.metrics import ServerMetrics

logger = logging.getLogger(__name__)

# Past the request deadline, how long a request still counts against its key's concurrency in the
# shared store if the replica that took it died without giving it back.
ORPHAN_MARGIN_S = 60.0
NO_DEADLINE_FLIGHT_S = 3600.0


@dataclass(slots=True)
class KeyStore:
    """`shared`: the fleet's store (None: the admission ledger holds per-key limits); `usage`: this
    host's usage file (None with a shared store, which keeps usage itself)."""

    shared: KeyLimits | None
    usage: UsageBook | None

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()
        if self.usage is not None:
            self.usage.close()


async def open_key_store(settings: Settings, metrics: ServerMetrics) -> KeyStore:
    """With --shared-state, the store is asked once first (server/admission/redis_start.py): a URL
    that cannot work raises SharedStateUnusable, a store that does not answer is marked down."""
    if settings.shared_state is None:
        return KeyStore(None, UsageBook(settings.usage_store_file()))
    from server.admission.redis_keys import RedisKeyLimits
    from server.admission.redis_start import SharedStateUnusable, check_at_start, check_url_shape

    ttl = (settings.request_timeout or NO_DEADLINE_FLIGHT_S) + ORPHAN_MARGIN_S
    url = settings.shared_state.get_secret_value()
    try:
        check_url_shape(url)  # before redis-py reads it: it reads some mistakes as something else
        shared = RedisKeyLimits(url, settings.shared_state_failure, metrics, ttl)
        try:
            await check_at_start(url, shared, settings.shared_state_failure)
        except BaseException:
            await shared.close()
            raise
    except SharedStateUnusable as exc:
        # One plain line before uvicorn's traceback of the failed start-up.
        logger.error("not starting: %s", exc)
        raise
    return KeyStore(shared, None)
