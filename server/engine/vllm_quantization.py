"""`--quantization`: checked against the methods the installed vLLM knows, before anything starts.

vLLM would find a wrong name too, but only deep in its config, as a long validation error; and the
list changes between releases (0.26 still has `bitsandbytes`, 0.32 dropped it and renamed online
FP8 to `fp8_per_tensor`, keeping `fp8` as a deprecated alias). So the check asks vLLM for its list
rather than keeping one here.
"""

from __future__ import annotations

import vllm
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

# The methods the README documents for the Mixtral family, named first in the error.
DOCUMENTED = ("fp8", "awq", "gptq", "bitsandbytes")


def check_quantization(method: str | None) -> None:
    """Raise ValueError naming the methods this vLLM supports if `method` is not one of them."""
    if method is None or method in QUANTIZATION_METHODS:
        return
    documented = [m for m in DOCUMENTED if m in QUANTIZATION_METHODS]
    others = sorted(set(QUANTIZATION_METHODS) - set(documented))
    raise ValueError(
        f"--quantization {method!r} is not a quantization method of vLLM {vllm.__version__}. "
        f"For Mixtral: {', '.join(documented)} (see the README); it also knows: {', '.join(others)}."
    )
