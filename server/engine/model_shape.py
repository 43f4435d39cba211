"""What the engine arguments need to know of a checkpoint before vLLM starts: whether its MLP is a
mixture of experts (Mixtral) or dense (Mistral-7B). Some vLLM paths work for one and not the other
(LoRA on the CPU backend, bitsandbytes), and a refusal at start beats an engine that dies later."""

from __future__ import annotations

# The config keys that count experts, in the MoE families vLLM serves (Mixtral's is the first).
EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")


def is_mixture_of_experts(model_path: str) -> bool:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    return any((getattr(config, key, None) or 0) > 1 for key in EXPERT_COUNT_KEYS)
