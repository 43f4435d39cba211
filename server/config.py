"""One Settings class: env vars (prefix MIXTRAL_), CLI flags and compose files share its field names.

The flag names follow vLLM's (`--max-model-len`, `--tensor-parallel-size`, ...) wherever they mean
the same thing, so an operator moving from `vllm serve` keeps their command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["auto", "json", "text"]

EMBEDDED_MODEL_NAME = "tiny-mixtral"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mixtral-serve"


class Settings(BaseSettings):
    """Everything the server can be told. Unset engine fields keep vLLM's own defaults."""

    model_config = SettingsConfigDict(env_prefix="MIXTRAL_", extra="ignore", protected_namespaces=())

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0: any free port).")
    model: str | None = Field(
        None,
        description="Path of a Mixtral/Mistral checkpoint. Unset: the embedded tiny Mixtral "
        "(random weights, its text is noise), generated into --cache-dir on first use.",
    )
    tokenizer: str | None = Field(None, description="Tokenizer path, if not the model's.")
    chat_template: Path | None = Field(
        None,
        description="A Jinja chat template file to chat with, instead of the tokenizer's own (a base "
        "model has none: chat is refused without one). Requests cannot set a template.",
    )
    served_model_name: str | None = Field(
        None, description="Name clients use in `model`. Default: the model folder's name."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs (or CPU ranks) to shard the model over.")
    pipeline_parallel_size: int = Field(
        1,
        ge=1,
        description="Pipeline stages (e.g. one per node); the engine uses tensor x pipeline GPUs in all.",
    )
    distributed_executor_backend: Literal["mp", "ray"] | None = Field(
        None,
        description="How the engine starts its workers: mp (processes, on this host or, with "
        "--nnodes, on several) or ray (a Ray cluster; vLLM's CPU backend has no Ray support). "
        "Default: vLLM's choice.",
    )
    nnodes: int = Field(
        1,
        ge=1,
        description="Hosts one engine spans (mp backend): the same command on each, with its own "
        "--node-rank and the head's --master-addr.",
    )
    node_rank: int = Field(
        0, ge=0, description="This host's place among --nnodes: 0 serves HTTP, the others run --headless."
    )
    master_addr: str | None = Field(
        None, description="With --nnodes: the address of node 0, where the engine's ranks meet."
    )
    master_port: int | None = Field(
        None, ge=1, le=65535, description="With --nnodes: node 0's port for the ranks. Default: vLLM's."
    )
    headless: bool = Field(
        False,
        description="Run only this host's share of the engine (--node-rank above 0): no HTTP, no "
        "scheduler; the server on node 0 drives it.",
    )
    max_model_len: int | None = Field(None, ge=16, description="Context length; default the model's.")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    max_num_seqs: int | None = Field(None, ge=1, description="Most sequences in one engine step.")
    max_num_batched_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens in one engine step. Default: 2048 on GPUs (measured), vLLM's on CPU.",
    )
    dtype: str = Field("auto", description="auto, bfloat16, float16 or float32.")
    quantization: str | None = Field(None, description="A vLLM quantization method, e.g. fp8.")
    linear_backend: str | None = Field(
        None,
        description="Kernel family for quantized linear layers (vLLM's --linear-backend: auto, marlin, "
        "machete, ...). Unset: marlin for a W4A16 compressed-tensors checkpoint on Hopper (measured "
        "faster there than vLLM's Machete, see docs/models.md), vLLM's own choice otherwise.",
    )
    enforce_eager: bool = Field(False, description="Disable CUDA graphs and torch.compile.")
    enable_prefix_caching: bool | None = Field(None, description="Reuse KV cache across shared prefixes.")
    load_format: str = Field("auto", description="auto, safetensors, ... or dummy (random weights).")
    seed: int = Field(0, description="Engine seed; requests may set their own.")
    kv_cache_memory_bytes: int | None = Field(
        None, ge=1 << 20, description="KV-cache size in bytes. On CPU it defaults to 1 GiB."
    )
    max_logprobs: int = Field(20, ge=0, le=20, description="Most top_logprobs a request may ask for.")
    timeout_keep_alive: int = Field(
        75,
        ge=1,
        description="Seconds an idle HTTP keep-alive connection stays open. Longer than the pools of "
        "clients and load balancers (aiohttp 15-60 s, ALBs 60 s), so they never reuse a connection "
        "we closed; uvicorn's and vLLM's 5 s lost requests and stalled them 5 s under load.",
    )
    stream_interval: int = Field(
        1,
        ge=1,
        le=1024,
        description="Tokens per streamed event (vLLM's --stream-interval). 1: each token as soon as "
        "it is made; a stream that falls behind still gets the tokens it missed in one event.",
    )
    scheduling_policy: Literal["fcfs", "priority"] = Field(
        "fcfs",
        description="fcfs: requests run in arrival order; priority: by each request's `priority` "
        "(lower first, then arrival), which requests may only set under this policy.",
    )
    api_server_count: int | None = Field(
        None,
        ge=1,
        le=64,
        description="HTTP front-end processes sharing one engine. Default: 4 on GPUs (measured), "
        "1 on CPU (the engine needs the cores).",
    )
    shutdown_timeout: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM: seconds to let open requests finish (new ones get 503) before the "
        "server stops.",
    )
    shutdown_delay: float = Field(
        0.0,
        ge=0,
        description="On SIGTERM: seconds to keep serving with /ready answering 503 before the drain "
        "starts, so that a load balancer polling /ready stops sending first. A second signal skips it.",
    )
    engine_stall_timeout: float = Field(
        60.0,
        ge=0,
        description="Seconds without an engine step while requests wait before the engine counts as "
        "hung: /health turns 503 and the server exits 1 for its supervisor to restart it. 0: never.",
    )
    warmup: bool = Field(
        True,
        description="Before serving, run prompts of the prefill sizes serving meets, so that no "
        "kernel is compiled while serving.",
    )
    log_kernel_compiles: bool = Field(
        False,
        description="Log every kernel JIT compile after the engine's start-up (vLLM logs only the "
        "first of each kernel otherwise): shows whether the warm-up covers what serving meets.",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="The embedded model, and the engine's compile caches (torch.compile, Triton), "
        "kept across restarts.",
    )
    responses_store_path: Path | None = Field(
        None,
        description="The SQLite file that keeps stored responses (/v1/responses with store true), "
        "shared by every front-end process; default: responses.sqlite3 in --cache-dir.",
    )
    log_level: LogLevel = "info"
    log_format: LogFormat = Field(
        "auto",
        description="json: one JSON object a line, for log collectors; text: one plain line, for a "
        "person; auto: text when stderr is a terminal, json otherwise (a collector, a pipe, a file).",
    )
    log_request_content: bool = Field(
        False,
        description="Also log each request's body and response body (prompts and outputs, cut at "
        "64 KiB each). Off: no prompt or output text reaches a log line.",
    )
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins browsers may call from (comma-separated, or *). None: CORS off.",
    )
    cors_allow_methods: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["GET", "POST", "OPTIONS"], description="CORS: methods allowed."
    )
    cors_allow_headers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "X-Request-Id"],
        description="CORS: request headers allowed.",
    )
    cors_allow_credentials: bool = Field(
        False, description="CORS: let browsers send cookies and credentials (not with origin *)."
    )

    # Who may call, and how much. Keys: `secret` or `name:secret`; the name (default key1, key2, ...)
    # is what logs and metrics show, never the secret.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="API keys clients must send as `Authorization: Bearer KEY` (comma-separated; "
        "each `secret` or `name:secret`). None: no authentication.",
    )
    api_keys_file: Path | None = Field(
        None, description="A file with more API keys, one a line (`secret` or `name:secret`, # comments)."
    )
    protect_operations: bool = Field(
        False, description="Also require a key on /health, /ready and /metrics (open by default)."
    )
    key_requests_per_minute: int | None = Field(None, ge=1, description="Per API key: requests a minute.")
    key_tokens_per_minute: int | None = Field(
        None,
        ge=1,
        description="Per API key: prompt + completion tokens a minute (max_tokens is held "
        "while a request runs, the unused part given back at its end).",
    )
    key_max_concurrent: int | None = Field(None, ge=1, description="Per API key: requests at once.")
    key_tokens_per_day: int | None = Field(
        None,
        ge=1,
        description="Per API key: prompt + completion tokens a UTC day; past it, 429 quota_exceeded "
        "until midnight UTC.",
    )
    key_tokens_per_month: int | None = Field(
        None,
        ge=1,
        description="Per API key: prompt + completion tokens a UTC calendar month; past it, 429 "
        "quota_exceeded until the 1st.",
    )
    admin_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Names of the API keys (comma-separated) that may read /v1/admin routes (per-key "
        "usage). None: those routes answer 404.",
    )
    shared_state: SecretStr | None = Field(
        None,
        description="redis://host:port/db (or rediss://): keep per-key limits, concurrency and usage "
        "in this Redis, shared by every replica of a fleet (a password in it is never shown). None: "
        "on this host only.",
    )
    shared_state_failure: Literal["open", "closed"] = Field(
        "open",
        description="When the --shared-state store fails: open lets keyed requests in without their "
        "per-key limits (each replica's own admission still bounds its load), closed refuses them "
        "with 503.",
    )
    usage_store_path: Path | None = Field(
        None,
        description="Without --shared-state: the SQLite file that keeps per-key usage across "
        "restarts; default: usage.sqlite3 in --cache-dir.",
    )

    # Bounded admission: past these, 429 with Retry-After instead of a queue without end.
    max_in_flight: int | None = Field(
        None,
        ge=1,
        description="Most sequences admitted at once, running or waiting. Default: "
        "4 x the engine's max-num-seqs.",
    )
    max_queued_prompt_tokens: int | None = Field(
        None,
        ge=1,
        description="Most prompt tokens admitted but not yet prefilled. Default: 256 x the "
        "engine's max-num-batched-tokens.",
    )
    request_timeout: float | None = Field(
        600.0,
        gt=0,
        description="Seconds a request may take, queue included; a request's own "
        "`timeout` may only shorten it. None: no deadline.",
    )

    # Limits on input: each past-the-limit request gets a 400 (413 for the body) naming the limit.
    max_body_bytes: int = Field(4 << 20, ge=1024, description="Largest request body.")
    max_messages: int = Field(1024, ge=1, description="Most messages in one chat request.")
    max_prompt_tokens: int | None = Field(
        None, ge=1, description="Most prompt tokens in one request. Default: the context length."
    )
    max_tokens_limit: int | None = Field(
        None,
        ge=1,
        description="Largest max_tokens a request may ask for; also the default when "
        "it asks none. Default: what the context leaves.",
    )
    max_n: int = Field(8, ge=1, le=16, description="Most choices (n) in one request.")

    # LoRA adapters, each served under its own name in `model`, on the one base model.
    lora_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="LoRA adapters to serve, as name=path (comma-separated); a request selects one "
        "by its `model`.",
    )
    enable_lora: bool = Field(
        False,
        description="Start the engine with LoRA support even without --lora-modules (on with "
        "--lora-modules or --allow-runtime-lora).",
    )
    max_loras: int | None = Field(
        None, ge=1, description="Most adapters in one engine step (vLLM's default: 1)."
    )
    max_lora_rank: int | None = Field(
        None, ge=1, description="Largest adapter rank the engine makes room for (vLLM's default: 16)."
    )
    allow_runtime_lora: bool = Field(
        False,
        description="Serve POST /v1/load_lora_adapter and /v1/unload_lora_adapter (which read any "
        "path on this host; behind the API key when keys are set). Runs one front-end process.",
    )

    @field_validator(
        "api_keys",
        "admin_keys",
        "cors_allow_origins",
        "cors_allow_methods",
        "cors_allow_headers",
        "lora_modules",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """`--api-keys a,b` and MIXTRAL_API_KEYS=a,b: one string, several values."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("shared_state")
    @classmethod
    def _shared_state_is_redis(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("--shared-state must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _no_credentials_for_any_origin(self) -> Settings:
        """With `*`, credentials would let every site act as the user: refused, as browsers do."""
        if self.cors_allow_credentials and "*" in self.cors_allow_origins:
            raise ValueError("--cors-allow-credentials cannot be used with --cors-allow-origins '*'")
        return self

    @model_validator(mode="after")
    def _runtime_lora_has_one_front_end(self) -> Settings:
        """Each front-end process keeps its own adapter names and engine ids: an adapter loaded at
        run time through one would be unknown to the others, and two could give two adapters the
        same id (the engine would then serve one's weights for the other)."""
        if self.allow_runtime_lora and (self.api_server_count or 1) > 1:
            raise ValueError(
                "--allow-runtime-lora runs one front-end process (an adapter loaded at run time is "
                "known only to the process that loaded it); drop --api-server-count or set it to 1"
            )
        return self

    @model_validator(mode="after")
    def _nodes_fit_together(self) -> Settings:
        """Node 0 serves and schedules; every other node only runs its ranks, so a node above 0 that
        tried to serve HTTP would be a second, broken engine."""
        if self.node_rank >= self.nnodes:
            raise ValueError(f"--node-rank must be below --nnodes ({self.nnodes})")
        if self.nnodes > 1 and not self.master_addr:
            raise ValueError("--nnodes above 1 needs --master-addr (node 0's address)")
        if (self.node_rank > 0) != self.headless:
            raise ValueError("--headless goes with a --node-rank above 0, and only there")
        return self

    @field_validator("lora_modules")
    @classmethod
    def _lora_modules_are_name_path(cls, value: list[str]) -> list[str]:
        names = [entry.partition("=")[0].strip() for entry in value]
        for entry, name in zip(value, names, strict=True):
            if not name or not entry.partition("=")[2].strip():
                raise ValueError(f"--lora-modules entry {entry!r} is not name=path")
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"LoRA adapter name {duplicate!r} is used twice")
        return value

    def lora_adapters(self) -> dict[str, str]:
        """--lora-modules as name -> path."""
        pairs = (entry.partition("=") for entry in self.lora_modules)
        return {name.strip(): path.strip() for name, _, path in pairs}

    def lora_enabled(self) -> bool:
        """Whether the engine starts with LoRA support: adapters can only be loaded into it then."""
        return bool(self.lora_modules) or self.enable_lora or self.allow_runtime_lora

    def usage_store_file(self) -> Path:
        return self.usage_store_path or self.cache_dir / "usage.sqlite3"

    def responses_store_file(self) -> Path:
        return self.responses_store_path or self.cache_dir / "responses.sqlite3"

    def resolved_served_name(self) -> str:
        if self.served_model_name:
            return self.served_model_name
        if self.model is None:
            return EMBEDDED_MODEL_NAME
        return Path(self.model).name or self.model
