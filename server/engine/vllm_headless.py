"""A host's share of an engine that spans several hosts (`--headless --node-rank N`, N > 0).

vLLM's multi-node mp executor runs the scheduler and the HTTP side on node 0 only; every other node
starts its own ranks and waits for node 0's steps. This runs those ranks from the same Settings as
node 0's server, so both hosts build one engine configuration (model, dtype, context length, KV-cache
size) from one set of flags; a worker started by hand with different ones fails to join, or worse.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

from vllm.usage.usage_lib import UsageContext
from vllm.v1.executor.multiproc_executor import MultiprocExecutor

from server.config import Settings
from server.engine.vllm import engine_args, resolve_model_path

logger = logging.getLogger(__name__)


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_headless(settings: Settings) -> int:
    """Start this node's ranks and wait until they end (or SIGTERM/SIGINT ends them). Returns the
    exit status: 0 after a signal, 1 when a rank died (node 0's engine is then dead too)."""
    args = engine_args(settings, resolve_model_path(settings))
    config = args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER, headless=True)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logger.info(
        "node %d of %d: starting this node's engine ranks for node 0 at %s",
        settings.node_rank,
        settings.nnodes,
        config.parallel_config.master_addr,
    )
    executor = MultiprocExecutor(config, monitor_workers=False)
    try:
        executor.start_worker_monitor(inline=True)  # returns when a rank has died
    except SystemExit:
        logger.info("stopping this node's engine ranks")
        return 0
    finally:
        executor.shutdown()  # type: ignore[no-untyped-call]
    return 1
