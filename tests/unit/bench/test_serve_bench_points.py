"""bench/tools/serve_bench.py: each point of a run draws its own prompts (a seed per point:
`vllm bench serve`'s random prompts depend on the seed alone, so one seed replays the earlier
points' prompts from the server's prefix cache); two servers measured in turn get the same prompts."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOLS = Path(__file__).resolve().parents[3] / "bench" / "tools"


def load_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(TOOLS))  # it imports serve_table beside it
    spec = importlib.util.spec_from_file_location("serve_bench", TOOLS / "serve_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_bench"] = module
    spec.loader.exec_module(module)
    return module


def seed_of(command: list[str]) -> str:
    return command[command.index("--seed") + 1]


def test_each_point_gets_the_next_seed_and_two_runs_get_the_same_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_bench = load_module(monkeypatch)
    seeds: dict[str, list[str]] = {}
    for label in ("vllm-r0", "ours-r0"):
        args = argparse.Namespace(
            out=tmp_path, label=label, port=8000, model_dir=tmp_path, input_len=64, output_len=64
        )
        for concurrency, prompts in ((64, 64), (256, 768), (64, 256)):
            command = serve_bench.client_command(args, "m", (concurrency, prompts), "x.json")
            seeds.setdefault(label, []).append(seed_of(command))
            (tmp_path / f"{label}.c{concurrency}.n{prompts}.{len(seeds[label])}.client.log").write_text("")
    assert seeds["vllm-r0"] == seeds["ours-r0"] == ["0", "1", "2"]
