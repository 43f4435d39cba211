"""Child processes end with their parent, even when the parent is SIGKILLed (OOM killer, kill -9).

vLLM stops its engine core and workers only from a parent that lives to do it; a parent killed
outright would leave `VLLM::EngineCore` running, holding the GPUs and the port's engine sockets,
and a restarted server would find no memory free. Linux can send a signal to a process when its
parent dies (PR_SET_PDEATHSIG). vLLM runs its general plugins (pyproject.toml's
`vllm.general_plugins` entry point names this function) early in every process it starts: the
engine core, its workers and the front ends. SIGTERM: vLLM's own handlers then stop cleanly.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a multiprocessing child on Linux: SIGTERM when the parent dies. Elsewhere: nothing."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent.pid:  # the parent died before the request above was made
        os.kill(os.getpid(), signal.SIGTERM)
