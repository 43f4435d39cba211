"""--lora-modules parsing, and the plain refusal of LoRA on Mixtral on the CPU backend."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.config import Settings


def test_lora_modules_from_one_comma_separated_string() -> None:
    settings = Settings(lora_modules="zh=/adapters/zh, chat=/adapters/chat")  # type: ignore[arg-type]
    assert settings.lora_adapters() == {"zh": "/adapters/zh", "chat": "/adapters/chat"}
    assert settings.lora_enabled()


@pytest.mark.parametrize("entry", ["zh", "=/x", "zh=", "a=/x,a=/y"])
def test_lora_modules_must_be_unique_name_path_pairs(entry: str) -> None:
    with pytest.raises(ValidationError):
        Settings(lora_modules=entry)  # type: ignore[arg-type]


def test_lora_is_off_unless_asked_for() -> None:
    assert not Settings().lora_enabled()
    assert Settings(allow_runtime_lora=True).lora_enabled()


def test_cpu_engine_refuses_lora_on_mixtral_plainly_instead_of_dying_on_first_step() -> None:
    from vllm.platforms import current_platform

    from server.engine.tiny import ensure_model, ensure_tiny_model
    from server.engine.vllm import engine_args
    from tests.conftest import cache_dir
    from tests.tiny_models import TINY_MISTRAL_7B_INSTRUCT

    if not current_platform.is_cpu():
        pytest.skip("the refusal is for vLLM's CPU backend")
    with pytest.raises(ValueError, match="need a GPU"):
        engine_args(Settings(enable_lora=True), str(ensure_tiny_model(cache_dir())))
    # A dense model runs LoRA on the CPU backend (tests/integration/engine/test_lora_dense.py).
    dense = engine_args(Settings(enable_lora=True), str(ensure_model(cache_dir(), TINY_MISTRAL_7B_INSTRUCT)))
    assert dense.enable_lora


def test_runtime_lora_runs_one_front_end(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.process import cli

    monkeypatch.setattr(cli, "default_api_server_count", lambda: 4)  # what a GPU host gets
    assert cli.front_end_count(Settings()) == 4
    assert cli.front_end_count(Settings(api_server_count=2)) == 2
    assert cli.front_end_count(Settings(allow_runtime_lora=True)) == 1
    assert cli.front_end_count(Settings(allow_runtime_lora=True, api_server_count=1)) == 1
    # Adapters from --lora-modules are loaded by every front end at start, so several are fine.
    assert cli.front_end_count(Settings(lora_modules="zh=/a", api_server_count=4)) == 4  # type: ignore[arg-type]


def test_runtime_lora_with_several_front_ends_is_refused() -> None:
    with pytest.raises(ValidationError, match="--allow-runtime-lora runs one front-end process"):
        Settings(allow_runtime_lora=True, api_server_count=4)


def test_flags_that_do_not_go_together_exit_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    from server.process.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--allow-runtime-lora", "--api-server-count", "2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mixtral-serve: error: --allow-runtime-lora runs one front-end process")
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["--max-num-seqs", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("mixtral-serve: error: --max-num-seqs: Input should be greater")
