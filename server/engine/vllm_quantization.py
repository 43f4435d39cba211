"""`--quantization`: checked against the methods the installed vLLM knows, before anything starts.

vLLM would find a wrong name too, but only deep in its config, as a long validation error; and the
list changes between releases (0.26 still has `bitsandbytes`, 0.32 dropped it and renamed online
FP8 to `fp8_per_tensor`, keeping `fp8` as a deprecated alias). So the check asks vLLM for its list
rather than keeping one here. Two refusals are ours: bitsandbytes on a mixture-of-experts model,
which no pinned vLLM can load (see check_quantization), and a 4-bit compressed-tensors Mixtral on a
CPU whose vLLM backend has no int4 MoE kernel for it (see check_int4_moe_on_cpu).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, get_args

import torch
import vllm
from vllm.config.kernel import LinearBackend
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
from vllm.platforms import current_platform

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
            "checkpoint, or make one from the bf16 checkpoint with `mixtral-serve quantize SRC DST "
            "--scheme w4a16` (see docs/models.md, Quantized weights)."
        )
    if method is None or method in QUANTIZATION_METHODS:
        return
    documented = [m for m in DOCUMENTED if m in QUANTIZATION_METHODS]
    others = sorted(set(QUANTIZATION_METHODS) - set(documented))
    raise ValueError(
        f"--quantization {method!r} is not a quantization method of vLLM {vllm.__version__}. "
        f"For Mixtral: {', '.join(documented)} (see docs/models.md); it also knows: {', '.join(others)}."
    )


def _int4_groups(model_path: str) -> list[dict[str, Any]]:
    """The config groups of a compressed-tensors checkpoint whose weights are int4 (what
    `mixtral-serve quantize --scheme w4a16` and llm-compressor's W4A16 write). A model id that is
    not a local folder is not read here."""
    config_file = Path(model_path) / "config.json"
    if not config_file.is_file():
        return []
    quant: dict[str, Any] = json.loads(config_file.read_text()).get("quantization_config") or {}
    if quant.get("quant_method") != "compressed-tensors":
        return []
    groups = quant.get("config_groups") or {}
    return [
        group
        for group in groups.values()
        if isinstance(group, dict)
        and (group.get("weights") or {}).get("num_bits") == 4
        and (group.get("weights") or {}).get("type", "int") == "int"
    ]


def int4_weights(model_path: str) -> bool:
    """Whether the checkpoint's config.json declares compressed-tensors int4 weights."""
    return bool(_int4_groups(model_path))


def int4_weight_only(model_path: str) -> bool:
    """Int4 weights with bf16/fp16 activations (W4A16), not W4A8: the layers vLLM runs on its
    mixed-precision kernels (Machete, Marlin)."""
    groups = _int4_groups(model_path)
    return bool(groups) and all(not group.get("input_activations") for group in groups)


def cpu_runs_int4_moe() -> bool:
    """vLLM's CPU backend (0.32) has one int4 MoE kernel outside AMD's optional zentorch, and it
    needs an x86 CPU with AMX tiles (Sapphire Rapids and later); vLLM asks torch the same way."""
    return platform.machine().lower() in ("x86_64", "amd64") and bool(torch.cpu._is_amx_tile_supported())


def check_int4_moe_on_cpu(model_path: str) -> None:
    """Refuse an int4 Mixtral on a CPU without AMX at start, naming the reason; vLLM itself would
    find no MoE kernel for it only while loading the weights, in a long traceback."""
    if not current_platform.is_cpu() or cpu_runs_int4_moe() or not int4_weights(model_path):
        return
    if is_mixture_of_experts(model_path):
        raise ValueError(
            f"{model_path} holds 4-bit (W4A16) Mixtral weights, and vLLM's CPU backend runs 4-bit "
            "mixture-of-experts layers only on an Intel CPU with AMX (lscpu flag amx_tile, Xeon "
            "Sapphire Rapids or later); this CPU has none. Serve the bf16 checkpoint here, or the "
            "4-bit one on a GPU."
        )


def linear_backend(chosen: str | None, model_path: str) -> str | None:
    """The kernel family for quantized linear layers (vLLM's `--linear-backend`), checked against the
    installed vLLM's list. Unset, a W4A16 compressed-tensors checkpoint on Hopper gets Marlin: vLLM
    0.26 and 0.32 pick Machete there for the attention projections, and Marlin measured faster at 64
    streams on an H200 (docs/models.md, 4-bit from the bf16 checkpoint). Elsewhere vLLM already
    picks Marlin (Ampere, Blackwell: Machete is Hopper-only) or its own choice is kept."""
    known = get_args(LinearBackend)
    if chosen is not None:
        backend = chosen.lower().replace("-", "_")
        if backend not in known:
            raise ValueError(
                f"--linear-backend {chosen!r} is not a linear backend of vLLM {vllm.__version__}; "
                f"it knows: {', '.join(known)}."
            )
        return backend
    hopper = current_platform.is_cuda() and current_platform.is_device_capability(90)
    if hopper and int4_weight_only(model_path):
        return "marlin"
    return None
