"""bench/tools/serve_bench.py: each point of a run draws its own prompts (a seed per point:
`vllm bench serve`'s random prompts depend on the seed alone, so one seed replays the earlier
points' prompts from the server's prefix cache); two servers measured in turn get the same prompts."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

from tests.unit.bench.scripts import load_script

TOOLS = Path(__file__).resolve().parents[3] / "bench" / "tools"


def load_module() -> ModuleType:
    return load_script(TOOLS / "serve_bench.py")


def seed_of(command: list[str]) -> str:
    return command[command.index("--seed") + 1]


def test_each_point_gets_the_next_seed_and_two_runs_get_the_same_sequence(tmp_path: Path) -> None:
    serve_bench = load_module()
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
