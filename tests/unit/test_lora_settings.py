"""--lora-modules parsing, and the plain refusal of LoRA on the CPU backend."""

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


def test_cpu_engine_refuses_lora_plainly_instead_of_dying_on_first_step() -> None:
    from vllm.platforms import current_platform

    from server.engine.vllm import engine_args

    if not current_platform.is_cpu():
        pytest.skip("the refusal is for vLLM's CPU backend")
    with pytest.raises(ValueError, match="need a GPU"):
        engine_args(Settings(enable_lora=True), "/models/x")
