"""Request checks for vLLM's output extensions, shared by chat and completions."""

from __future__ import annotations

from server.errors import InvalidRequestError
from server.openai.bodies.extras import Extras
from server.openai.schemas.chat import ChatCompletionRequest, ChatRequestFields
from server.openai.schemas.common import CommonRequestFields


def check_stream(body: CommonRequestFields) -> None:
    """vLLM sends the prompt's logprobs in whole answers only; a stream would drop them."""
    if body.stream and body.prompt_logprobs is not None:
        raise InvalidRequestError(
            "prompt_logprobs are not available when stream is true.", param="prompt_logprobs"
        )


def prompt_logprobs(body: CommonRequestFields, echo: bool, top_n: int | None) -> int | None:
    """How many alternatives the prompt's logprobs carry: the request's `prompt_logprobs`, else with
    `echo` the top logprobs asked for the completion (vLLM's rule), else none."""
    if body.prompt_logprobs is not None:
        return body.prompt_logprobs
    return top_n if echo else None


def check_chat(body: ChatRequestFields) -> None:
    check_stream(body)
    if body.continue_final_message and body.add_generation_prompt:
        raise InvalidRequestError(
            "continue_final_message continues the last message; it cannot also add a generation prompt "
            "(leave add_generation_prompt out or false).",
            param="continue_final_message",
        )


def chat_echo(body: ChatCompletionRequest) -> str:
    """vLLM's chat echo: the answer starts with the last message's text when that message has the
    answer's role (an assistant message it continues; any last message without a generation prompt)."""
    if not body.echo:
        return ""
    last = body.messages[-1]
    return last.text() if last.role == "assistant" or body.add_generation_prompt is False else ""


def chat_extras(body: ChatCompletionRequest, prompt: list[int]) -> Extras | None:
    """vLLM's output extensions of a chat request; None (the fast path) when none is asked for. The
    prompt's logprobs come in whole answers only, so a stream does not ask the engine for them."""
    top_n = None if body.stream else prompt_logprobs(body, body.echo, body.top_logprobs)
    if top_n is None and not body.return_token_ids and not body.continuous_usage:
        return None
    return Extras(
        prompt_ids=[prompt],
        n=body.n,
        prompt_logprobs=top_n,
        return_token_ids=body.return_token_ids,
        continuous_usage=body.continuous_usage,
    )
