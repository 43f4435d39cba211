"""The request fields `vllm serve` (0.32) accepts beyond OpenAI's, on both generating endpoints.

Each field is either honoured with vLLM's meaning, or refused with a 400 naming it whenever it asks
for something this server does not do. The refusals live in one table, `REFUSALS`: a field sent
with its neutral value (its default, null, false, an empty list or object) is accepted, because
clients written for vLLM send defaults freely; any other value is refused by the one validator
below, so that a client never gets output it did not ask for without knowing.

Fields that are not in the table and not declared are unknown, and ignored as OpenAI does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, GetJsonSchemaHandler, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from server.openai.schemas.common import (
    JSON_INT,
    TOKEN_ID_SCHEMA,
    Bool,
    Float,
    LenientModel,
    Rules,
    SchemaExtra,
    holds,
    is_set,
)
from server.openai.schemas.response_format import MAX_SCHEMA_BYTES, check_schema_bounds
from server.openai.schemas.tools import MAX_TOOLS, ToolChoice, ToolSpec

MAX_TOKEN_ID_LIST = 1024  # stop_token_ids, allowed_token_ids
MAX_BAD_WORDS = 64  # vLLM allows 128 after tokenization (each word counts once or twice)
MAX_CHOICES = 256
MAX_CACHE_SALT = 128  # vLLM 0.32's own bound
_CACHE_SALT_FORBIDDEN = "@/\\\x00"  # vLLM 0.32 refuses these too (its cache backends' separators)

TokenId = Annotated[int, Field(ge=0), JSON_INT, SchemaExtra(TOKEN_ID_SCHEMA)]
Text = Annotated[str, Field(max_length=MAX_SCHEMA_BYTES)]


# A neutral value test, and the same set of values as JSON Schema.
Neutral = tuple[Callable[[Any], bool], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Refusal:
    neutral: Callable[[Any], bool]
    why: str
    # The neutral values as JSON Schema, for the published schema (the same set as `neutral`).
    accepted: dict[str, Any]


def _is(*values: Any) -> Neutral:
    """Equal to one of `values`, where true is not 1 (JSON tells them apart, as JSON Schema does)."""
    return (
        lambda value: any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in values),
        {"enum": list(values)},
    )


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == ""


EMPTY: Neutral = (_empty, {"enum": [None, [], {}, ""]})


def _no_repetition_detection(value: Any) -> bool:
    return value is None or value.get("max_pattern_size", 0) == 0


NO_REPETITION_DETECTION: Neutral = (
    _no_repetition_detection,
    {
        "not": {
            "type": "object",
            "required": ["max_pattern_size"],
            "properties": {"max_pattern_size": {"not": {"const": 0}}},
        }
    },
)


def _refusal(neutral: Neutral, why: str) -> Refusal:
    return Refusal(neutral[0], why, neutral[1])


NO_FUNCTIONS = "functions and function_call are OpenAI's deprecated names: send tools and tool_choice."
NOT_VLLM_032 = "vLLM dropped this field; use structured_outputs (or response_format) instead."

# field -> (what counts as neutral, why any other value is refused). One row per field, both
# endpoints; a row for a field an endpoint does not declare is unused there.
REFUSALS: dict[str, Refusal] = {
    "use_beam_search": _refusal(_is(False, None), "Beam search is not supported."),
    "length_penalty": _refusal(_is(1.0, None), "length_penalty applies to beam search only."),
    "watermarking": _refusal(_is(False, None), "This server applies no watermark."),
    "logprob_token_ids": _refusal(EMPTY, "Log probabilities of chosen token ids are not supported."),
    "thinking_token_budget": _refusal(
        _is(None, -1), "Mixtral does not reason: there is no thinking to budget."
    ),
    "repetition_detection": _refusal(NO_REPETITION_DETECTION, "Repetition detection is not supported."),
    "vllm_xargs": _refusal(EMPTY, "This server runs no sampling plugins to read vllm_xargs."),
    "kv_transfer_params": _refusal(EMPTY, "Disaggregated prefill (KV transfer) is not configured."),
    "ec_transfer_params": _refusal(EMPTY, "Encoder-cache transfer is not configured."),
    "media_io_kwargs": _refusal(EMPTY, "The model takes text only."),
    "mm_processor_kwargs": _refusal(EMPTY, "The model takes text only."),
    "prompt_embeds": _refusal(EMPTY, "Prompts as embeddings are not supported; send text or token ids."),
    "return_prompt_text": _refusal(_is(False, None), "The response does not carry the prompt text."),
    "routed_experts_prompt_start": _refusal(_is(0), "This server does not return routed experts."),
    "stream_interval": _refusal(_is(1, None), "Streams send every token as it comes; no batching."),
    "documents": _refusal(EMPTY, "The chat template takes no documents."),
    "chat_template": _refusal(_is(None), "Requests cannot set a chat template; the operator does."),
    "chat_template_kwargs": _refusal(EMPTY, "The chat template takes no arguments from requests."),
    "reasoning_effort": _refusal(_is(None, "none"), "Mixtral does not reason."),
    "functions": _refusal(EMPTY, NO_FUNCTIONS),
    "function_call": _refusal(_is(None, "none"), NO_FUNCTIONS),
    "suffix": _refusal(_is(None, ""), "Mixtral has no fill-in-the-middle mode."),
    "guided_json": _refusal(_is(None), NOT_VLLM_032),
    "guided_regex": _refusal(_is(None), NOT_VLLM_032),
    "guided_choice": _refusal(_is(None), NOT_VLLM_032),
    "guided_grammar": _refusal(_is(None), NOT_VLLM_032),
    "guided_json_object": _refusal(_is(None), NOT_VLLM_032),
    "guided_decoding_backend": _refusal(_is(None), NOT_VLLM_032),
    "guided_whitespace_pattern": _refusal(_is(None), NOT_VLLM_032),
    "disable_additional_properties": _refusal(_is(False), "Only false is supported."),
    "whitespace_pattern": _refusal(_is(None), "JSON is always written without free whitespace."),
    "structural_tag": _refusal(_is(None), "Structural tags are not supported."),
}


class Refusals(LenientModel):
    """The one validator that applies REFUSALS to whichever of its fields a model declares; the
    schema of each such field takes only its neutral values."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = super().__get_pydantic_json_schema__(core, handler)
        for name, prop in schema.get("properties", {}).items():
            if name in REFUSALS:
                prop.update(REFUSALS[name].accepted)
        return schema

    @field_validator(*REFUSALS, check_fields=False)
    @classmethod
    def _refuse_what_is_not_provided(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        raw = value.model_dump(by_alias=True) if isinstance(value, LenientModel) else value
        refusal = REFUSALS[name]
        if not refusal.neutral(raw):
            raise ValueError(f"{refusal.why} Omit {name} or send its default.")
        return value


class StructuredOutputs(Refusals):
    """vLLM's `structured_outputs`: exactly one constraint. The engine compiles it with xgrammar and
    writes JSON without free whitespace (server/engine/vllm_structured.py)."""

    json_spec: dict[str, Any] | str | None = Field(
        None, alias="json", description="A JSON Schema (an object, or the same as a JSON string)."
    )
    regex: Text | None = None
    choice: Annotated[list[Text], Field(min_length=1, max_length=MAX_CHOICES)] | None = None
    grammar: Text | None = Field(None, description="An EBNF (GBNF) or Lark grammar.")
    json_object: Bool | None = Field(None, description="true: any JSON object.")
    disable_any_whitespace: Bool = Field(
        False, description="Accepted either way: this server always writes JSON without free whitespace."
    )
    disable_additional_properties: Bool = Field(False, description="Only false is supported.")
    whitespace_pattern: str | None = Field(None, description="Not supported (only null).")
    structural_tag: str | None = Field(None, description="Not supported (only null).")

    SCHEMA_RULES: ClassVar[Rules] = (
        # _exactly_one and _json_object_true below.
        {
            "oneOf": [
                is_set(k, {"not": {"type": "null"}})
                for k in ("json", "regex", "choice", "grammar", "json_object")
            ]
        },
        holds("json_object", {"enum": [True, None]}),
    )

    @field_validator("json_spec")
    @classmethod
    def _json_is_a_schema(cls, value: dict[str, Any] | str | None) -> dict[str, Any] | None:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise ValueError("json must be a JSON Schema, as an object or a JSON string") from exc
            if not isinstance(value, dict):
                raise ValueError("json must be a JSON Schema object")
        return None if value is None else check_schema_bounds(value)

    @field_validator("grammar")
    @classmethod
    def _grammar_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("grammar must not be empty")
        return value

    @field_validator("regex")
    @classmethod
    def _regex_has_no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("regex must not contain a NUL character")
        return value

    @field_validator("json_object")
    @classmethod
    def _json_object_true(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("json_object must be true if set; omit structured_outputs for free text")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputs:
        kinds = [
            k
            for k in ("json_spec", "regex", "choice", "grammar", "json_object")
            if getattr(self, k) is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "structured_outputs takes exactly one of json, regex, choice, grammar, json_object"
            )
        return self


class RepetitionDetection(LenientModel):
    max_pattern_size: Annotated[int, Field(ge=0), JSON_INT] = 0
    min_pattern_size: Annotated[int, Field(ge=0), JSON_INT] = 0
    min_count: Annotated[int, Field(ge=0), JSON_INT] = 0


def _refused(default: Any = None, what: str = "") -> Any:
    """A refused field's Field: its neutral default, and the refusal's reason in the schema."""
    return Field(default, description=f"{what} Not supported: only the default is accepted.".strip())


Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1), JSON_INT]
XArgValue = str | int | float | list[str | int | float]


class VLLMExtensions(Refusals):
    """vLLM's extension fields that both /v1/chat/completions and /v1/completions take."""

    stop_token_ids: Annotated[list[TokenId], Field(max_length=MAX_TOKEN_ID_LIST)] | None = Field(
        None, description="Token ids that end the completion (finish_reason stop); their text is kept."
    )
    include_stop_str_in_output: Bool = Field(False, description="Keep the matched `stop` string in the text.")
    skip_special_tokens: Bool = Field(True, description="false: special tokens (e.g. </s>) show in the text.")
    spaces_between_special_tokens: Bool = Field(
        True, description="With skip_special_tokens false: a space between adjacent special tokens."
    )
    allowed_token_ids: Annotated[list[TokenId], Field(min_length=1, max_length=MAX_TOKEN_ID_LIST)] | None = (
        Field(None, description="Sample only from these token ids.")
    )
    bad_words: Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=MAX_BAD_WORDS)] = (
        Field(
            default_factory=list,
            description="Words the completion must not contain (as vLLM: their last token "
            "is forbidden where it would complete the word).",
        )
    )
    truncate_prompt_tokens: Annotated[int, Field(ge=-1), JSON_INT] | None = Field(
        None,
        description="Keep only this many prompt tokens (the last ones, unless truncation_side is right); "
        "-1: as many as the context allows, leaving one token for the completion.",
    )
    truncation_side: Literal["left", "right"] | None = Field(
        None, description="left (the default): keep the last tokens; right: keep the first ones."
    )
    structured_outputs: StructuredOutputs | None = Field(
        None,
        description="Constrain the output (vLLM's form); not together with a response_format other "
        'than {"type": "text"}.',
    )
    priority: Int64 = Field(
        0,
        description="Lower runs earlier. Non-zero only on a server started with "
        "--scheduling-policy priority.",
    )
    cache_salt: Annotated[str, Field(min_length=1, max_length=MAX_CACHE_SALT)] | None = Field(
        None, description="Requests share cached prompt prefixes only with requests of the same salt."
    )
    request_id: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="The response's id becomes chatcmpl-/cmpl- followed by this."
    )
    session_id: str | None = Field(
        None, description="Accepted and ignored (vLLM uses it only in KV-cache events)."
    )
    return_token_offsets: Bool | None = Field(False, description="Accepted and ignored, as vLLM does here.")
    mm_payload: Literal["tensors", "none"] = Field(
        "tensors", description="Accepted and ignored, as vLLM does here."
    )
    return_mm_kwargs: Bool | None = Field(None, description="Accepted and ignored, as vLLM does here.")

    use_beam_search: Bool = _refused(False)
    length_penalty: Float = _refused(1.0)
    watermarking: Bool | None = _refused()
    logprob_token_ids: list[TokenId] | None = _refused()
    thinking_token_budget: Annotated[int, Field(ge=-1), JSON_INT] | None = _refused()
    repetition_detection: RepetitionDetection | None = _refused()
    vllm_xargs: dict[str, XArgValue] | None = _refused()
    kv_transfer_params: dict[str, Any] | None = _refused()
    ec_transfer_params: dict[str, Any] | None = _refused()
    return_tokens_as_token_ids: Bool | None = Field(
        None, description='Logprob tokens named "token_id:<id>" instead of their text.'
    )
    routed_experts_prompt_start: Annotated[int, Field(ge=0), JSON_INT] = _refused(0)
    stream_interval: Annotated[int, Field(ge=1), JSON_INT] | None = _refused(None, "1 is accepted.")
    guided_json: Any = _refused(None, "Dropped by vLLM; use structured_outputs.json.")
    guided_regex: Any = _refused(None, "Dropped by vLLM; use structured_outputs.regex.")
    guided_choice: Any = _refused(None, "Dropped by vLLM; use structured_outputs.choice.")
    guided_grammar: Any = _refused(None, "Dropped by vLLM; use structured_outputs.grammar.")
    guided_json_object: Any = _refused(None, "Dropped by vLLM; use structured_outputs.json_object.")
    guided_decoding_backend: Any = _refused(None, "Dropped by vLLM.")
    guided_whitespace_pattern: Any = _refused(None, "Dropped by vLLM.")

    SCHEMA_RULES: ClassVar[Rules] = (
        # The validators below. A blank bad word is one of Python's whitespace only; the schema
        # refuses ASCII blanks only (JSON Schema's regexes and Python's disagree on the rest).
        holds("bad_words", {"items": {"pattern": r"[^\t\n\v\f\r ]"}}),
        holds("truncate_prompt_tokens", {"not": {"const": 0}}),
        holds(
            "cache_salt", {"anyOf": [{"type": "null"}, {"type": "string", "pattern": r"^[^@/\\\u0000]*$"}]}
        ),
    )

    @field_validator("bad_words")
    @classmethod
    def _bad_words_not_blank(cls, value: list[str]) -> list[str]:
        if any(not word.strip() for word in value):
            raise ValueError("bad_words entries must not be empty or blank")
        return value

    @field_validator("truncate_prompt_tokens")
    @classmethod
    def _truncation_keeps_a_prompt(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("truncate_prompt_tokens must be -1 or at least 1: 0 would leave no prompt")
        return value

    @field_validator("cache_salt")
    @classmethod
    def _salt_characters(cls, value: str | None) -> str | None:
        if value is not None and any(c in _CACHE_SALT_FORBIDDEN for c in value):
            raise ValueError("cache_salt must not contain '@', '/', '\\' or NUL")
        return value


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class ChatExtensions(VLLMExtensions):
    """vLLM's extension fields of /v1/chat/completions only."""

    add_special_tokens: Bool = Field(
        False, description="true: a BOS before the chat template's prompt too (which has its own)."
    )
    include_reasoning: Bool = Field(True, description="Accepted either way: Mixtral writes no reasoning.")
    parallel_tool_calls: Bool | None = Field(
        True, description="false: at most one tool call per answer (the grammar allows one)."
    )
    documents: list[dict[str, str]] | None = _refused()
    chat_template: str | None = _refused()
    chat_template_kwargs: dict[str, Any] | None = _refused()
    media_io_kwargs: dict[str, dict[str, Any]] | None = _refused()
    mm_processor_kwargs: dict[str, Any] | None = _refused()
    return_prompt_text: Bool | None = _refused()
    reasoning_effort: ReasoningEffort | None = _refused(None, '"none" is accepted.')
    tools: Annotated[list[ToolSpec], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoice | None = Field(
        None, description='Default: "auto" with tools, "none" without (OpenAI\'s defaults).'
    )
    functions: list[dict[str, Any]] | None = _refused()
    function_call: Literal["none", "auto"] | dict[str, Any] | None = _refused()


class CompletionExtensions(VLLMExtensions):
    """vLLM's extension fields of /v1/completions only."""

    add_special_tokens: Bool = Field(True, description="false: no BOS before a text prompt.")
    prompt_embeds: str | list[str] | None = _refused()
    suffix: str | None = _refused(None, 'Mixtral has no fill-in-the-middle mode; "" is accepted.')
