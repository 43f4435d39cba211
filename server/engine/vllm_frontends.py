"""One vLLM engine core fed by N HTTP front-end processes, as `vllm serve --api-server-count N` does.

This (the supervisor) process starts the engine core and the N front-end processes, then watches
them all; it serves no HTTP itself. Each front end runs `target(listen_address, None, payload,
client_config)` and builds its own AsyncLLM client of the same core from `client_config` (see
VLLMEngine.start).

When any of them exits, whatever its status, the server is over: a front end's AsyncLLM client
cannot be started again on a running core (vLLM binds each client's sockets by its index at the
core's start), and a core cannot be started again under running clients. So the supervisor sets
`engine_gone` at once: every front end then fails its open streams (an error event and [DONE]),
answers 503 and exits 1 by itself, within about a second. What is left after a short grace is
stopped, then the engine core, and the supervisor exits 1 for the supervisor above it to restart
the whole server. vLLM's own wait reacts only to non-zero exits; this one to any.

vLLM moved the address hand-over between versions, both handled here:
- 0.26: ZMQ addresses are placeholders; each front end binds and reports what it bound, and the
  supervisor hands the gathered addresses to the engine core's handshake.
- 0.32: the supervisor binds the ZMQ listeners itself and hands their sockets to the front ends.
"""

from __future__ import annotations

import inspect
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import connection
from typing import Any

from vllm.usage.usage_lib import UsageContext
from vllm.v1.engine import utils as engine_utils
from vllm.v1.executor import Executor
from vllm.v1.utils import APIServerProcessManager

from server.config import Settings
from server.engine.vllm import ENGINE_SHUTDOWN_TIMEOUT_S, engine_args, resolve_model_path

logger = logging.getLogger(__name__)

# On SIGTERM a front end drains for up to --shutdown-timeout, then stops; this much more before
# vLLM's process manager kills it (its own default is 5 s, which would cut every drain short).
FRONTEND_EXIT_MARGIN_S = 10.0
# After a process of the group exited: how long the front ends have to fail their streams and exit
# by themselves (they linger 1 s answering 503), and then to stop once told.
FAILED_GROUP_GRACE_S = 2.5
FAILED_GROUP_KILL_AFTER_S = 1.0
EXIT_FAILED = 1
Target = Callable[[str, Any, Any, dict[str, Any]], None]


def _stop_on_signals() -> None:
    """SIGTERM/SIGINT end the wait below; the `finally` then stops the processes in order: the
    front ends first (each drains its open requests), the engine core after them. Later signals are
    ignored, so that they cannot cut that order short and leave the engine core running."""

    def handler(signum: int, _frame: object) -> None:
        logger.info("signal %d: draining the front ends, then stopping the engine", signum)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@contextmanager
def _engine_and_frontends(
    vllm_config: Any, count: int, listen_address: str, target: Target, payload: Any
) -> Iterator[tuple[Any, Any, Any]]:
    """Yields (front-end manager, engine manager, coordinator) once the engine core is up."""
    utils: Any = engine_utils  # typed against one vLLM version; both are handled
    process_manager: Any = APIServerProcessManager
    executor_class = Executor.get_class(vllm_config)
    common = {
        "listen_address": listen_address,
        "sock": None,
        "args": payload,
        "num_servers": count,
        "target_server_fn": target,
        "stats_update_address": None,
    }
    if hasattr(utils, "bind_engine_zmq_listeners"):  # vLLM >= 0.27
        listeners = utils.bind_engine_zmq_listeners(vllm_config, count)
        with utils.launch_core_engines(vllm_config, executor_class, True, listeners.addresses) as launch:
            manager = process_manager(
                **common,
                input_listeners=listeners.inputs,
                output_listeners=listeners.outputs,
                tensor_queue=launch.tensor_queue,
            )
            launch.watched_frontend_processes = manager.processes
        yield manager, launch.engine_manager, launch.coordinator
        return
    addresses = utils.get_engine_zmq_addresses(vllm_config, count)
    with utils.launch_core_engines(vllm_config, executor_class, True, addresses, count) as launched:
        engine_manager, coordinator, addresses, tensor_queue = launched
        manager = process_manager(
            **common,
            input_addresses=addresses.inputs,
            output_addresses=addresses.outputs,
            tensor_queue=tensor_queue,
        )
        # The engine core's handshake (on leaving this block) needs what the front ends bound.
        addresses.inputs, addresses.outputs = manager.gather_actual_addresses()
    yield manager, engine_manager, coordinator


def _wait_for_any_exit(manager: Any, engine_manager: Any, coordinator: Any) -> str:
    """Blocks until one process of the group exits (a signal interrupts it: SystemExit); names it."""
    processes = list(manager.processes)
    processes += list(getattr(engine_manager, "processes", []))  # none for engines vLLM runs on Ray
    if coordinator is not None:
        processes.append(coordinator.proc)
    by_sentinel = {proc.sentinel: proc for proc in processes}
    ended = [by_sentinel[s] for s in connection.wait(list(by_sentinel))]
    return ", ".join(f"{proc.name} (pid {proc.pid}, status {proc.exitcode})" for proc in ended)


def _end_failed_group(manager: Any, engine_manager: Any, engine_gone: Any) -> None:
    """Tell the front ends the engine is gone, let them end their streams and exit, stop the rest."""
    engine_gone.set()
    deadline = time.monotonic() + FAILED_GROUP_GRACE_S
    for proc in manager.processes:
        proc.join(max(0.0, deadline - time.monotonic()))
    manager.shutdown(timeout=FAILED_GROUP_KILL_AFTER_S)
    if engine_manager is not None:  # its requests' clients are gone: nothing to let finish
        if "timeout" in inspect.signature(engine_manager.shutdown).parameters:
            engine_manager.shutdown(timeout=FAILED_GROUP_KILL_AFTER_S)
        else:
            engine_manager.shutdown()


def run_frontends(
    settings: Settings, count: int, listen_address: str, target: Target, payload: Any, engine_gone: Any
) -> int:
    """Blocks until a signal (then drains: status 0) or until any process exits (status 1).
    `engine_gone`: the multiprocessing Event the front ends were given."""
    _stop_on_signals()
    args = engine_args(settings, resolve_model_path(settings))
    args._api_process_count = count
    args._api_process_rank = -1
    vllm_config = args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
    with _engine_and_frontends(vllm_config, count, listen_address, target, payload) as (
        manager,
        engine_manager,
        coordinator,
    ):
        logger.info("engine core up; %d front-end processes on %s", count, listen_address)
        try:
            ended = _wait_for_any_exit(manager, engine_manager, coordinator)
            for signum in (signal.SIGTERM, signal.SIGINT):  # a stop now would only cut this short
                signal.signal(signum, signal.SIG_IGN)
            logger.error("%s exited; stopping the server (status %d)", ended, EXIT_FAILED)
            _end_failed_group(manager, engine_manager, engine_gone)
            return EXIT_FAILED
        finally:
            manager.shutdown(
                timeout=settings.shutdown_delay + settings.shutdown_timeout + FRONTEND_EXIT_MARGIN_S
            )
            if engine_manager is not None:
                _stop_engine_core(engine_manager)
            if coordinator is not None:
                coordinator.shutdown()


def _stop_engine_core(engine_manager: Any) -> None:
    """The front ends are gone, nothing runs: a second for the engine core to exit (vLLM's default
    wait is 5 s, which its CPU worker takes) before vLLM kills it. vLLM 0.26 takes no timeout."""
    if "timeout" in inspect.signature(engine_manager.shutdown).parameters:
        engine_manager.shutdown(timeout=ENGINE_SHUTDOWN_TIMEOUT_S)
    else:
        engine_manager.shutdown()
