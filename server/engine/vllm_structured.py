"""Structured output (response_format, structured_outputs) on vLLM: output constrained by a grammar
while sampling: JSON (any object, or following a schema), a regex, one of a list of choices, or an
EBNF/Lark grammar.

vLLM 0.26 through 0.32 take the same `SamplingParams(structured_outputs=StructuredOutputsParams(...))`.
The engine runs xgrammar with compact JSON (no free whitespace between tokens): with whitespace
free, a model can fill its whole budget with blanks inside an object and end cut off, invalid
(seen with the tiny model at temperature 0; a known failure of real models in JSON mode too). vLLM
allows compact JSON only with a named backend, so there is no fallback to guidance or outlines: a
schema xgrammar cannot compile is refused. vLLM checks a schema only when the request reaches the
engine's input processor, which for a stream is after the response has started; `verify` runs that
same check earlier, so a schema, regex or grammar it cannot compile is a 400, streamed or not.
"""

from __future__ import annotations

from vllm.config import StructuredOutputsConfig
from vllm.sampling_params import SamplingParams, StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM

from server.engine.base import SamplingOptions
from server.engine.tool_grammar import lead_then_json_grammar, text_or_json_grammar
from server.errors import InvalidRequestError

# What `verify` may raise for a schema the client got wrong. vLLM 0.32 wraps what xgrammar raises
# in VLLMValidationError, but 0.26 scans the schema for unsupported features outside its own
# try, where a malformed schema can raise anything: all of it is the request's fault (this
# check touches no engine state), so all of it is a 400.
_SCHEMA_ERRORS = (Exception,)


def engine_config() -> StructuredOutputsConfig:
    return StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True)


def structured_outputs(options: SamplingOptions) -> StructuredOutputsParams | None:
    if options.json_schema is not None:
        return StructuredOutputsParams(json=options.json_schema)
    if options.json_object:
        return StructuredOutputsParams(json_object=True)
    if options.regex is not None:
        return StructuredOutputsParams(regex=options.regex)
    if options.choice is not None:
        return StructuredOutputsParams(choice=list(options.choice))
    if options.grammar is not None:
        return StructuredOutputsParams(grammar=options.grammar)
    if options.text_or_json is not None:
        return StructuredOutputsParams(grammar=text_or_json_grammar(options.text_or_json))
    if options.lead_then_json is not None:
        grammar = lead_then_json_grammar(options.lead_then_json, options.structured_param)
        return StructuredOutputsParams(grammar=grammar)
    return None


def verify(llm: AsyncLLM, params: SamplingParams, param: str = "response_format") -> None:
    """Raise InvalidRequestError if the engine cannot build the grammar this request asks for."""
    if params.structured_outputs is None:
        return
    config = llm.vllm_config
    try:
        params.verify(
            llm.model_config, config.speculative_config, config.structured_outputs_config, llm.tokenizer
        )
    except _SCHEMA_ERRORS as exc:
        raise InvalidRequestError(f"{param}: {exc}", param=param) from exc
