"""Start-up warm-up: before taking traffic, run one prompt of each prefill size class serving meets.

vLLM compiles its Triton fused-MoE kernel on first use of each (block config, argument
specialization) pair. CUDA-graph capture covers decode batches, but prefill steps larger than the
largest captured batch run eagerly: their token count M picks a tuned config (keys up to 4096 in
vLLM's shipped tables) and Triton specializes integer arguments on divisibility by 16. Two such
arguments follow M (top-2 routing, 8 experts, BLOCK_SIZE_M 128): num_valid_tokens = 2M, divisible
by 16 when M % 8 == 0, and EM = 2M + 8 * 127, divisible by 16 when M % 8 == 4. So each size class
is run at M % 8 == 0, 4 and 3 (neither). On 2xH200 a warm-up without the M % 8 == 4 case still
left 8 compiles (configs of the 1024 and 1536-2048 classes) to serving; vLLM's log cuts the
specialization off, so that this case closes the gap is inferred, not yet measured. Without
this, the first long prompts after start-up pay those compiles as latency spikes. With the compile
caches kept on disk (see --cache-dir), a warm restart loads them instead of compiling.

With LoRA adapters loaded at start (--lora-modules), prompts also run through the first of them:
vLLM's LoRA kernels are Triton kernels compiled on first use too, and CUDA-graph capture (with its
dummy adapters) covers only the decode range. One adapter covers all: vLLM stacks every adapter's
weights padded to --max-lora-rank, so the kernels see the same shapes whichever adapter a request
names. The sizes are denser than the base model's: the MoE LoRA kernel (vLLM 0.26's
`_fused_moe_lora_one_shot_kernel`) also compiles a variant per value of its NPID_FACTOR, which vLLM
picks from the step's token count against the GPU's SM count, with boundaries that fall inside the
size classes above. On one H200 (tiny Mixtral, max-model-len 2048) a warm-up of the base sizes alone
left two such compiles to prompts of 1,900 and 2,000 tokens. So the adapter route steps through the
eager range every ADAPTER_STEP tokens up to 2,048, at the same three residues as the base sizes:
a second run, stepping at M % 8 == 0 and 3 only, still left one compile to the 1,900-token prompt
(M % 8 == 4), which fits the padded token count (2M + 8 * 127) being an argument here too.
Batches with several adapters active at once multiply the kernel's work and can pick other
variants; those are not covered. Each route also gets one short prompt, which is all an engine
that captures no CUDA graphs (--enforce-eager) would otherwise meet first while serving.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time

from server.engine.base import Engine, GenerateRequest, SamplingOptions

logger = logging.getLogger(__name__)

# Token counts near each tuned fused-MoE config key above the CUDA-graph range (512).
PREFILL_SIZE_CLASSES = (520, 1024, 1536, 2048, 3072, 4096, 6144, 8192)
SPECIALIZATION_OFFSETS = (0, 3, 4)  # the classes are multiples of 8
FIRST_ORDINARY_TOKEN = 100  # past the control tokens
SHORT_PROMPT = 32
CUDA_GRAPH_RANGE = 512  # vLLM's largest captured batch by default: larger steps run eagerly
ADAPTER_STEP = 64
FINE_UP_TO, COARSE_STEP = 2048, 256  # beyond our GPU default step size, coarser: fewer long prompts


def prefill_sizes(max_model_len: int, max_num_batched_tokens: int) -> list[int]:
    """Each size class at M % 8 == 0, 4 and 3 (see the module docstring); capped by what one step
    and one prompt can hold."""
    cap = min(max_model_len - 1, max_num_batched_tokens)
    sizes = {n + delta for n in PREFILL_SIZE_CLASSES for delta in SPECIALIZATION_OFFSETS if n + delta <= cap}
    if cap >= PREFILL_SIZE_CLASSES[0]:
        sizes.add(cap)
    return sorted(sizes)


def adapter_sizes(max_model_len: int, max_num_batched_tokens: int) -> list[int]:
    """The base sizes, plus every ADAPTER_STEP tokens of the eager range (every COARSE_STEP above
    FINE_UP_TO) at M % 8 == 0, 4 and 3."""
    cap = min(max_model_len - 1, max_num_batched_tokens)
    fine = range(CUDA_GRAPH_RANGE + ADAPTER_STEP, min(cap, FINE_UP_TO) + 1, ADAPTER_STEP)
    steps = [*fine, *range(FINE_UP_TO + COARSE_STEP, cap + 1, COARSE_STEP)]
    dense = {n + delta for n in steps for delta in SPECIALIZATION_OFFSETS if n + delta <= cap}
    return sorted(dense | set(prefill_sizes(max_model_len, max_num_batched_tokens)))


async def warm_up(engine: Engine) -> float:
    """Runs the prompts one at a time (each its own engine step), on the base model and then
    through the first LoRA adapter if any; returns the seconds it took."""
    card = engine.model_card
    rng = random.Random(0)
    start = time.perf_counter()
    limits = (card.max_model_len, card.max_num_batched_tokens)
    adapters = engine.adapters()
    routes: list[tuple[str | None, list[int]]] = [(None, [SHORT_PROMPT, *prefill_sizes(*limits)])]
    if adapters:
        routes.append((adapters[0].name, [SHORT_PROMPT, *adapter_sizes(*limits)]))
    for route, sizes in routes:
        for size in sizes:
            # Distinct random tokens, so prefix caching cannot shorten a later prompt.
            ids = [rng.randrange(FIRST_ORDINARY_TOKEN, card.vocab_size) for _ in range(size)]
            options = SamplingOptions(max_tokens=2, temperature=0.0, ignore_eos=True)
            request = GenerateRequest(f"warmup-{route or 'base'}-{size}", ids, options, adapter=route)
            stream = engine.generate(request)
            async with contextlib.aclosing(stream):
                async for _ in stream:
                    pass
        logger.info(
            "warm-up of %s: %d prompt sizes %s",
            f"adapter '{route}'" if route else "the base model",
            len(sizes),
            sizes,
        )
    elapsed = time.perf_counter() - start
    logger.info("warm-up: %d prompts in %.1f s", sum(len(sizes) for _, sizes in routes), elapsed)
    return elapsed
