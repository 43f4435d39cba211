"""The architecture is checked, not only described: pyproject.toml's import contracts (layers that
import only downwards, vllm only in server.engine, no web framework below server.http, clients apart
from the server) hold for the code as it is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over `tree` (its pyproject.toml, its server/ and clients/)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [sys.executable, "-c", _LINT], cwd=tree, env=env, capture_output=True, text=True, timeout=300
    )


def test_every_import_contract_is_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    """The contracts can fail: a copy of the tree whose engine imports the HTTP layer is refused."""
    for package in ("server", "clients"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    base = tmp_path / "server" / "engine" / "base.py"
    base.write_text(base.read_text() + "\nfrom server.http import deps  # noqa: E402,F401\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "server.engine.base -> server.http.deps" in result.stdout
