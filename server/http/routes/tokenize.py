"""POST /tokenize and POST /detokenize: the server's own tokenizer and chat template, so a client
can count a prompt before sending it. The ids are exactly the ones the generating routes feed the
engine: `count` equals their `usage.prompt_tokens` for the same prompt or messages."""

from __future__ import annotations

from fastapi import APIRouter

from server.admission import input_limits
from server.http.deps import StateDep
from server.http.openapi import error_responses
from server.openai.sampling import check_token_ids
from server.openai.schemas.tokenize import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from server.openai.tools import opens_calls, tool_plan, turns_of

router = APIRouter(tags=["tokenize"])

ERRORS = error_responses(400, 401, 404)


@router.post("/tokenize", responses=ERRORS)
async def tokenize(body: TokenizeRequest, state: StateDep) -> TokenizeResponse:
    state.check_model(body.model)
    if body.messages is not None:
        input_limits.check_messages(len(body.messages), state.settings)
        plan = tool_plan(body.tools, body.tool_choice)
        tokens = state.template.render(
            turns_of(body.messages), tools=plan.offered if plan else None, open_calls=opens_calls(plan)
        )
    else:
        text = body.prompt or ""
        encode = state.tokenizer.encode if body.add_special_tokens else state.tokenizer.encode_segment
        tokens = encode(text)
    return TokenizeResponse(
        tokens=tokens,
        count=len(tokens),
        max_model_len=state.max_model_len,
        token_strs=state.tokenizer.pieces(tokens) if body.return_token_strs else None,
    )


@router.post("/detokenize", responses=ERRORS)
async def detokenize(body: DetokenizeRequest, state: StateDep) -> DetokenizeResponse:
    state.check_model(body.model)
    check_token_ids(body.tokens, state.engine.model_card.vocab_size, "tokens")
    return DetokenizeResponse(prompt=state.tokenizer.decode(body.tokens))
