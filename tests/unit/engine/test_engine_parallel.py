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


def test_one_engine_over_two_hosts_reaches_the_engine_args() -> None:
    flags = ["--pipeline-parallel-size", "2", "--nnodes", "2", "--master-addr", "10.0.0.1"]
    head = engine_args(parse_settings([*flags, "--master-port", "29600"]), "/m")
    worker = engine_args(parse_settings([*flags, "--node-rank", "1", "--headless"]), "/m")
    assert (head.nnodes, head.node_rank, head.master_addr, head.master_port) == (2, 0, "10.0.0.1", 29600)
    assert (worker.nnodes, worker.node_rank, worker.master_port) == (
        2,
        1,
        AsyncEngineArgs(model="/m").master_port,
    )


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--nnodes", "2"], "--master-addr"),
        (["--nnodes", "2", "--master-addr", "h", "--node-rank", "2", "--headless"], "--node-rank"),
        (["--nnodes", "2", "--master-addr", "h", "--node-rank", "1"], "--headless"),
        (["--headless"], "--headless"),
    ],
)
def test_nodes_that_do_not_fit_together_are_refused(flags: list[str], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        parse_settings(flags)


def test_ray_is_refused_on_the_cpu_backend_before_the_engine_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM 0.32 finds out only after starting Ray (bench/studies/multihost)."""
    monkeypatch.setattr(vllm_engine, "current_platform", SimpleNamespace(is_cpu=lambda: True))
    settings = parse_settings(["--pipeline-parallel-size", "2", "--distributed-executor-backend", "ray"])
    with pytest.raises(ValueError, match="--nnodes"):
        engine_args(settings, "/m")
