"""Settings from CLI flags (vLLM's kebab-case names) and MIXTRAL_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.config import EMBEDDED_MODEL_NAME, Settings, default_cache_dir
from server.process.cli import parse_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MIXTRAL_"):
            monkeypatch.delenv(name)


def test_no_flags_gives_the_defaults() -> None:
    settings = parse_settings([])
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.model is None
    assert settings.max_model_len is None
    assert settings.tensor_parallel_size == 1
    assert settings.enforce_eager is False
    assert settings.load_format == "auto"
    assert settings.gpu_memory_utilization == 0.9
    assert settings.max_logprobs == 20


def test_kebab_case_flags_follow_vllms_names() -> None:
    settings = parse_settings(
        [
            "--max-model-len",
            "2048",
            "--tensor-parallel-size",
            "2",
            "--enforce-eager",
            "--quantization",
            "fp8",
            "--load-format",
            "dummy",
            "--gpu-memory-utilization",
            "0.5",
            "--served-model-name",
            "mixtral",
        ]
    )
    assert settings.max_model_len == 2048
    assert settings.tensor_parallel_size == 2
    assert settings.enforce_eager is True
    assert settings.quantization == "fp8"
    assert settings.load_format == "dummy"
    assert settings.gpu_memory_utilization == 0.5
    assert settings.served_model_name == "mixtral"


def test_boolean_flag_has_a_negative_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXTRAL_ENFORCE_EAGER", "true")
    assert parse_settings([]).enforce_eager is True
    assert parse_settings(["--no-enforce-eager"]).enforce_eager is False


def test_env_vars_with_mixtral_prefix_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXTRAL_PORT", "9123")
    monkeypatch.setenv("MIXTRAL_MAX_MODEL_LEN", "4096")
    settings = parse_settings([])
    assert settings.port == 9123
    assert settings.max_model_len == 4096


def test_cli_flag_beats_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXTRAL_PORT", "9123")
    monkeypatch.setenv("MIXTRAL_MAX_MODEL_LEN", "4096")
    settings = parse_settings(["--max-model-len", "1024"])
    assert settings.max_model_len == 1024
    assert settings.port == 9123


def test_resolved_served_name_of_embedded_model_is_tiny_mixtral() -> None:
    assert Settings().resolved_served_name() == EMBEDDED_MODEL_NAME == "tiny-mixtral"


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("/models/Mixtral-8x7B-Instruct-v0.1", "Mixtral-8x7B-Instruct-v0.1"),
        ("/models/Mixtral-8x7B-Instruct-v0.1/", "Mixtral-8x7B-Instruct-v0.1"),
        ("relative/dir/my-model", "my-model"),
    ],
)
def test_resolved_served_name_of_a_path_is_its_folder_name(model: str, expected: str) -> None:
    assert Settings(model=model).resolved_served_name() == expected


def test_explicit_served_name_wins() -> None:
    assert Settings(model="/models/a", served_model_name="prod").resolved_served_name() == "prod"
    assert Settings(served_model_name="prod").resolved_served_name() == "prod"


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--port", "70000"], "port"),
        (["--gpu-memory-utilization", "1.5"], "gpu_memory_utilization"),
        (["--gpu-memory-utilization", "0"], "gpu_memory_utilization"),
        (["--max-model-len", "8"], "max_model_len"),
        (["--tensor-parallel-size", "0"], "tensor_parallel_size"),
        (["--max-logprobs", "21"], "max_logprobs"),
        (["--log-level", "verbose"], "log_level"),
    ],
)
def test_out_of_range_flag_values_raise_validation_error(argv: list[str], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_settings(argv)
    assert [e["loc"] for e in info.value.errors()] == [(field,)]


def test_out_of_range_env_value_raises_validation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXTRAL_PORT", "70000")
    with pytest.raises(ValidationError):
        parse_settings([])


def test_unknown_flag_exits_with_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_settings(["--bogus", "1"])
    assert info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_non_numeric_value_for_int_flag_is_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_settings(["--port", "eighty"])


def test_default_cache_dir_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "mixtral-serve"
    assert parse_settings([]).cache_dir == tmp_path / "mixtral-serve"


def test_cache_dir_flag_is_a_path() -> None:
    assert parse_settings(["--cache-dir", "/tmp/x"]).cache_dir == Path("/tmp/x")
