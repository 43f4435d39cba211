"""--quantization is checked against the installed vLLM's own list before any engine starts."""

from __future__ import annotations

import pytest
import vllm
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

from server.config import Settings
from server.engine.tiny import ensure_model, ensure_tiny_model
from server.engine.vllm import engine_args
from server.engine.vllm_quantization import check_quantization
from tests.conftest import cache_dir
from tests.tiny_models import TINY_MISTRAL_7B_INSTRUCT


@pytest.mark.parametrize(
    "method", [None, "fp8", "awq", "gptq", "awq_marlin", "gptq_marlin", "compressed-tensors"]
)
def test_methods_vllm_knows_pass(method: str | None) -> None:
    check_quantization(method, "/m")


def test_bitsandbytes_passes_on_a_dense_model_exactly_where_vllm_still_has_it() -> None:
    """vLLM 0.26 (the GPU image) has it; 0.32 dropped it."""
    mistral = str(ensure_model(cache_dir(), TINY_MISTRAL_7B_INSTRUCT))
    if "bitsandbytes" in QUANTIZATION_METHODS:
        check_quantization("bitsandbytes", mistral)
    else:
        with pytest.raises(ValueError, match="is not a quantization method of vLLM"):
            check_quantization("bitsandbytes", mistral)


def test_bitsandbytes_on_mixtral_is_refused_naming_what_works_instead() -> None:
    """No pinned vLLM loads Mixtral's experts with it (server/engine/vllm_quantization.py)."""
    with pytest.raises(ValueError, match="cannot load a mixture-of-experts model") as info:
        check_quantization("bitsandbytes", str(ensure_tiny_model(cache_dir())))
    assert "AWQ or GPTQ" in str(info.value)


def test_an_unknown_method_names_the_choices_and_the_vllm_version() -> None:
    with pytest.raises(ValueError) as info:
        check_quantization("fp9", "/m")
    message = str(info.value)
    assert "'fp9'" in message and vllm.__version__ in message
    assert "For Mixtral: fp8, awq, gptq" in message and "compressed-tensors" in message


def test_engine_arguments_refuse_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="--quantization 'int3'"):
        engine_args(Settings(quantization="int3"), "/m")
