"""The engine seam: what the HTTP layer needs from an inference engine, and nothing more.

Small on purpose (like TGI's `Backend` trait): the HTTP layer speaks these types only, so it never
imports vllm, and a test double can stand in for faults the real engine cannot make on demand.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client.registry import Collector

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class TextOrJson:
    """Output that is free text, optionally ended by `prefix` (which starts with `marker`) and JSON
    following `schema`, and then nothing more; the text before never contains `marker`. How a model
    answers in words or calls tools (tool_choice "auto")."""

    marker: str
    prefix: str
    schema: dict[str, object]


@dataclass(frozen=True, slots=True)
class LeadThenJson:
    """Output that is `lead` or nothing, then JSON following `schema`, and then nothing more: tool
    calls after a prompt that ends in the calls' marker token, where a trained model writes its
    list with a leading space (Mistral v3's " [")."""

    lead: str
    schema: dict[str, object]


@dataclass(frozen=True, slots=True)
class SamplingOptions:
    """Engine-neutral sampling settings; values were validated by the HTTP layer."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k
    min_p: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: dict[int, float] | None = None
    logprobs: int | None = None  # top alternatives per token; 0: only the chosen token's
    min_tokens: int = 0
    ignore_eos: bool = False
    # Structured output (response_format): the engine constrains sampling to a grammar.
    json_schema: dict[str, object] | None = None  # JSON that follows this JSON Schema
    json_object: bool = False  # any JSON object
    # Log-probabilities of the prompt's own tokens (each with this many top alternatives), handed
    # out on the first delta. With max_tokens 0 the engine only scores the prompt: no output tokens.
    prompt_logprobs: int | None = None
    regex: str | None = None  # text that matches this regular expression
    choice: tuple[str, ...] | None = None  # exactly one of these strings
    grammar: str | None = None  # text of this EBNF or Lark grammar
    text_or_json: TextOrJson | None = None  # text, or text then marker and JSON (tool calls)
    lead_then_json: LeadThenJson | None = None  # an optional lead, then JSON (forced tool calls)
    structured_param: str = "response_format"  # the request field a bad constraint is blamed on
    # vLLM's extensions (server/openai/schemas/vllm_extensions.py).
    stop_token_ids: tuple[int, ...] = ()
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    allowed_token_ids: tuple[int, ...] | None = None
    bad_words: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    request_id: str
    prompt_token_ids: list[int]
    sampling: SamplingOptions
    adapter: str | None = None  # a LoRA adapter's name (Engine.adapters); None: the base model
    priority: int = 0  # lower runs earlier, with the engine's priority scheduling
    cache_salt: str | None = None  # shares cached prefixes only with requests of the same salt


@dataclass(frozen=True, slots=True)
class TopLogprob:
    token_id: int
    token: str
    logprob: float
    utf8: bytes | None = None  # the token's own bytes; None: those of `token`
    rank: int | None = None  # 1: the most likely token


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """`token` is the text this token adds to the output, so the tokens add up to the text; `utf8`
    its own bytes (a part of a character split over tokens), None: those of `token`."""

    token_id: int
    token: str
    logprob: float
    top: list[TopLogprob]
    utf8: bytes | None = None
    rank: int | None = None  # the token's rank among all the vocabulary's (1: most likely)


@dataclass(slots=True)
class Delta:
    """New output of one sequence since the last delta. `text` never ends inside a UTF-8 character."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason | None = None
    logprobs: list[TokenLogprob] | None = None
    num_cached_prompt_tokens: int = 0
    # The prompt's tokens' log-probabilities (first delta only, when asked for): None for the first
    # token, which nothing precedes.
    prompt_logprobs: list[TokenLogprob | None] | None = None
    # What ended a "stop" finish, as vLLM reports it: the stop string or stop token id that matched;
    # None for EOS, a length finish, or no finish yet.
    stop_reason: int | str | None = None


@dataclass(frozen=True, slots=True)
class ModelCard:
    name: str
    root: str
    max_model_len: int
    vocab_size: int
    engine_version: str
    created: int
    max_num_batched_tokens: int = 2048  # most prompt tokens one engine step takes
    max_num_seqs: int = 256  # most sequences one engine step runs


@dataclass(frozen=True, slots=True)
class Adapter:
    """A LoRA adapter the engine serves beside its base model, selected by name per request."""

    name: str
    path: str


class Flag(Protocol):
    """A flag set in one process and read in others (a multiprocessing Event)."""

    def is_set(self) -> bool: ...


class SharedClock(Protocol):
    """A float every process of the group reads and writes (a multiprocessing RawValue('d'))."""

    value: float


@dataclass(frozen=True, slots=True)
class FrontendLink:
    """How front-end process `index` of `count` reaches the shared engine; `client_config` is the
    engine's own connection data, opaque here.

    A front end does not own the engine core, so it cannot see the core die; `engine_gone` is set
    by the supervisor when the core (or any process of the group) has exited. `last_step` holds
    the monotonic time of the latest engine step any front end heard of: each step's stats go to
    one front end only, and a front end whose requests wait must not take that for a hung engine."""

    index: int
    count: int
    client_config: dict[str, object]
    engine_gone: Flag | None = None
    last_step: SharedClock | None = None


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Scheduler state from the engine's most recent step. `made_at`: when the engine core made
    these numbers, on its own monotonic clock (0 before any step); with several front ends it alone
    orders reports that reached different ones (see engine/vllm_stats.py)."""

    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0
    steps: int = 0
    made_at: float = 0.0


@dataclass(frozen=True, slots=True)
class StepTimings:
    """Latency samples from one engine step, each handed out once (for histograms, unlike the
    EngineStats snapshot): the gap before every token after a request's first, and the time each
    request that finished this step waited in the queue before it was first scheduled."""

    inter_token_latencies: tuple[float, ...] = ()
    queue_times: tuple[float, ...] = ()


class Engine(Protocol):
    @property
    def model_card(self) -> ModelCard: ...

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Delta, None]:
        """Start a request. Invalid parameters raise here, before the first await; the returned
        iterator aborts the engine request when closed early (client gone, deadline, error): that
        is the one way to abort, so no request outlives the stream that owns it."""
        ...

    def adapters(self) -> list[Adapter]:
        """The LoRA adapters loaded now, in the order they were loaded."""
        ...

    async def add_adapter(self, name: str, path: str) -> Adapter:
        """Load a LoRA adapter; InvalidRequestError for a taken name, a bad path or an engine
        started without LoRA support."""
        ...

    async def remove_adapter(self, name: str) -> None:
        """Unload a LoRA adapter; NotFoundError if none has that name."""
        ...

    async def check_health(self) -> None:
        """Raise EngineUnavailableError if the engine cannot serve."""
        ...

    def stats(self) -> EngineStats: ...

    def vllm_metrics(self) -> Collector:
        """vLLM's own `vllm:*` families as this process's engine client records them (one process;
        with several front ends they are in the multiprocess files too)."""
        ...

    def on_stats(self, listener: Callable[[EngineStats], None]) -> None:
        """Call `listener` with each new EngineStats (on the event loop; it must not block)."""
        ...

    def on_timings(self, listener: Callable[[StepTimings], None]) -> None:
        """Call `listener` with the StepTimings of each engine step that has any (on the event loop;
        it must not block). In a front-end process: the steps of its own requests only."""
        ...

    async def shutdown(self) -> None: ...
