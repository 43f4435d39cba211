"""`--quantization`: checked against the methods the installed vLLM knows, before anything starts.

vLLM would find a wrong name too, but only deep in its config, as a long validation error; and the
list changes between releases (0.26 still has `bitsandbytes`, 0.32 dropped it and renamed online
FP8 to `fp8_per_tensor`, keeping `fp8` as a deprecated alias). So the check asks vLLM for its list
rather than keeping one here. One refusal is ours: bitsandbytes on a mixture-of-experts model,
which no pinned vLLM can load (see check_quantization).
"""

from __future__ import annotations

import vllm
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

from server.engine.model_shape import is_mixture_of_experts

# The methods docs/models.md documents for the Mixtral family, named first in the error
# (bitsandbytes, for dense models only, is among the others where vLLM has it).
DOCUMENTED = ("fp8", "awq", "gptq")


def check_quantization(method: str | None, model_path: str) -> None:
    """Raise ValueError naming the methods this vLLM supports if `method` is not one of them, or
    if it is bitsandbytes on a mixture-of-experts model."""
    if method == "bitsandbytes" and is_mixture_of_experts(model_path):
        # Seen on an H200 with vLLM 0.26 and the tiny Mixtral (its checkpoint has Mixtral-8x7B's
        # tensor names): the engine dies loading the first expert, "output with shape [512, 1]
        # doesn't match the broadcast shape [512, 256]". Our reading of vLLM 0.26's source: the
        # bitsandbytes loader picks the tensors to quantize by the experts' module name, and 0.26's
        # MoE layer keeps its experts one module deeper (`experts.routed_experts`), so Mixtral's
        # expert weights arrive unquantized into 4-bit parameters.
        raise ValueError(
            "--quantization bitsandbytes cannot load a mixture-of-experts model such as Mixtral: "
            "vLLM 0.26's bitsandbytes loader does not quantize the experts (its engine fails at start) "
            "and vLLM 0.32 no longer has the method. For 4-bit Mixtral, serve an AWQ or GPTQ "
            "checkpoint (see docs/models.md, Quantized weights)."
        )
    if method is None or method in QUANTIZATION_METHODS:
        return
    documented = [m for m in DOCUMENTED if m in QUANTIZATION_METHODS]
    others = sorted(set(QUANTIZATION_METHODS) - set(documented))
    raise ValueError(
        f"--quantization {method!r} is not a quantization method of vLLM {vllm.__version__}. "
        f"For Mixtral: {', '.join(documented)} (see docs/models.md); it also knows: {', '.join(others)}."
    )
