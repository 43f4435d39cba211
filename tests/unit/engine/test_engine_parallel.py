"""Multi-node settings (deploy/multi-node.md) reach vLLM's engine arguments, from flags and env.

Imports vllm (no engine is started).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from vllm.engine.arg_utils import AsyncEngineArgs

from server.config import Settings
from server.engine import vllm as vllm_engine
from server.engine.vllm import engine_args
from server.process.cli import parse_settings


@pytest.fixture(autouse=True)
def on_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_engine, "current_platform", SimpleNamespace(is_cpu=lambda: False))


def test_tensor_times_pipeline_over_ray_reaches_the_engine_args() -> None:
    settings = parse_settings(
        [
            "--tensor-parallel-size", "8",
            "--pipeline-parallel-size", "2",
            "--distributed-executor-backend", "ray",
        ]
    )  # fmt: skip
    args = engine_args(settings, "/m")
    assert isinstance(args, AsyncEngineArgs)
    assert (args.tensor_parallel_size, args.pipeline_parallel_size) == (8, 2)
    assert args.distributed_executor_backend == "ray"


def test_the_environment_sets_them_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXTRAL_PIPELINE_PARALLEL_SIZE", "4")
    monkeypatch.setenv("MIXTRAL_DISTRIBUTED_EXECUTOR_BACKEND", "mp")
    args = engine_args(Settings(), "/m")
    assert args.pipeline_parallel_size == 4
    assert args.distributed_executor_backend == "mp"


def test_unset_they_keep_vllms_defaults() -> None:
    args = engine_args(Settings(), "/m")
    defaults = AsyncEngineArgs(model="/m")
    assert args.pipeline_parallel_size == defaults.pipeline_parallel_size == 1
    assert args.distributed_executor_backend == defaults.distributed_executor_backend


@pytest.mark.parametrize("bad", [{"pipeline_parallel_size": 0}, {"distributed_executor_backend": "slurm"}])
def test_out_of_range_values_are_refused_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]
