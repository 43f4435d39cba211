"""The hand-built stream events and whole answers are byte for byte what the pydantic response models
in server/openai/schemas write, so the fast path changes nothing on the wire. Stream events are compared with
`model_dump_json(exclude_unset=True)`: the models' required fields are always there (null where the
spec allows), the optional ones only where the reference sets them."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from server.engine.base import Delta, TokenLogprob, TopLogprob
from server.observability.metrics import RequestTimer, ServerMetrics
from server.openai.bodies.chat import ChatContext, collect_chat, stream_chat
from server.openai.bodies.completions import CompletionContext, collect_completion, stream_completion
from server.openai.schemas.chat import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceLogprobs,
    ChunkDelta,
    LogprobEntry,
    TopLogprobEntry,
)
from server.openai.schemas.common import Usage
from server.openai.schemas.completions import Completion, CompletionChoice, CompletionLogprobs

TRICKY = [
    "",
    " plain",
    'quote " and \\ backslash',
    "new\nline\ttab\r\x00\x01\x1f\x7f",
    "café ☕ 日本語 \U0001f600",
    "\u2028\u2029</script>",
    "/slash/",
]
FINGERPRINT = "fp_0123456789"
FLOATS = [-0.0, -1e-7, -1.2345e-05, -9.218252182006836, -123.5, -3.4028234663852886e38, float("-inf")]


def timer() -> RequestTimer:
    return RequestTimer(ServerMetrics())


def chat_ctx(n: int = 1, top_logprobs: int | None = None, model: str = "tiny-mixtral") -> ChatContext:
    return ChatContext(
        id="chatcmpl-abc",
        created=1_700_000_000,
        model=model,
        prompt_tokens=11,
        n=n,
        top_logprobs=top_logprobs,
        timer=timer(),
        system_fingerprint=FINGERPRINT,
    )


def cmpl_ctx(echo: list[str], logprobs: int | None = None) -> CompletionContext:
    return CompletionContext(
        id="cmpl-abc",
        created=1_700_000_000,
        model="tiny-mixtral",
        prompt_tokens=7,
        echo=echo,
        logprobs=logprobs,
        timer=timer(),
        system_fingerprint=FINGERPRINT,
    )


def own_bytes(rng: random.Random) -> bytes | None:
    """A token's own bytes where they are not its text's: a part of a split character."""
    return rng.choice([None, None, b"", b"\xe6", b"\x97\xa5"])


def token_logprob(rng: random.Random, token: str) -> TokenLogprob:
    top = [TopLogprob(i, rng.choice(TRICKY) + str(i), rng.choice(FLOATS), own_bytes(rng)) for i in range(4)]
    return TokenLogprob(1, token, rng.choice(FLOATS), top, own_bytes(rng))


def bytes_of(entry: TokenLogprob | TopLogprob) -> list[int]:
    return list(entry.utf8 if entry.utf8 is not None else entry.token.encode())


def completion_top(entry: TokenLogprob, top_n: int) -> dict[str, float]:
    """The top alternatives plus the sampled token, as OpenAI's completions answer."""
    top = {t.token: t.logprob for t in entry.top[:top_n]}
    if entry.token not in top:
        top[entry.token] = entry.logprob
    return top


def random_deltas(rng: random.Random, choices: int, logprobs: bool) -> list[tuple[int, Delta]]:
    out: list[tuple[int, Delta]] = []
    for index in range(choices):
        for step in range(12):
            text = rng.choice(TRICKY) if step % 5 else ""  # some deltas carry no text
            ids = [rng.randrange(32000) for _ in range(rng.randrange(0, 3))]
            entries = [token_logprob(rng, rng.choice(TRICKY)) for _ in ids] if logprobs else None
            out.append((index, Delta(text, ids, None, entries)))
        reason = rng.choice(["stop", "length"])
        stop = rng.choice([None, "###", 13]) if reason == "stop" else None  # EOS, a string, a token id
        out.append((index, Delta(rng.choice(TRICKY), [5], reason, None, stop_reason=stop)))
    rng.shuffle(out)
    return out


async def feed(items: list[tuple[int, Delta]]) -> AsyncGenerator[tuple[int, Delta], None]:
    for item in items:
        yield item


async def drain(gen: AsyncGenerator[bytes, None]) -> list[bytes]:
    return [event async for event in gen]


def pydantic_chat_logprobs(entries: list[TokenLogprob], top_n: int) -> ChoiceLogprobs:
    """The model-built logprobs this server sent before the fast path: the reference."""
    return ChoiceLogprobs(
        content=[
            LogprobEntry(
                token=e.token,
                logprob=e.logprob,
                bytes=bytes_of(e),
                top_logprobs=[
                    TopLogprobEntry(token=t.token, logprob=t.logprob, bytes=bytes_of(t))
                    for t in e.top[:top_n]
                ],
            )
            for e in entries
        ],
        refusal=None,
    )


def expected_chat_stream(
    ctx: ChatContext, items: list[tuple[int, Delta]], include_usage: bool
) -> list[bytes]:
    def chunk(*choices: ChatChunkChoice, usage: Usage | None = None) -> bytes:
        fields = {"usage": usage} if usage is not None else {}
        body = ChatCompletionChunk(
            id=ctx.id,
            object="chat.completion.chunk",
            created=ctx.created,
            model=ctx.model,
            choices=list(choices),
            system_fingerprint=FINGERPRINT,
            **fields,  # type: ignore[arg-type]
        )
        return body.model_dump_json(exclude_unset=True).encode()

    role = ChunkDelta(role="assistant", content="")
    out = [
        chunk(ChatChunkChoice(index=i, delta=role, logprobs=None, finish_reason=None)) for i in range(ctx.n)
    ]
    tokens = 0
    for index, d in items:
        tokens += len(d.token_ids)
        if d.text or d.finish_reason or d.logprobs:
            lp = None
            if ctx.top_logprobs is not None and d.logprobs is not None:
                lp = pydantic_chat_logprobs(d.logprobs, ctx.top_logprobs)
            choice = ChatChunkChoice(
                index=index,
                delta=ChunkDelta(content=d.text),
                logprobs=lp,
                finish_reason=d.finish_reason,
                **({"stop_reason": d.stop_reason} if d.finish_reason else {}),  # type: ignore[arg-type]
            )
            out.append(chunk(choice))
    if include_usage:
        out.append(chunk(usage=Usage.of(ctx.prompt_tokens, tokens)))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("n", "top_logprobs"), [(1, None), (3, None), (1, 0), (2, 2)])
async def test_chat_stream_events_equal_pydantic_model_dump_json(
    seed: int, n: int, top_logprobs: int | None
) -> None:
    rng = random.Random(seed)
    items = random_deltas(rng, n, logprobs=top_logprobs is not None)
    ctx = chat_ctx(n, top_logprobs, model=rng.choice(["tiny-mixtral", 'odd "model" é']))
    include_usage = bool(seed % 2)
    events = await drain(stream_chat(ctx, feed(items), include_usage))
    assert events == expected_chat_stream(ctx, items, include_usage)


def expected_completion_stream(
    ctx: CompletionContext, items: list[tuple[int, Delta]], include_usage: bool
) -> list[bytes]:
    def chunk(choices: list[CompletionChoice], usage: Usage | None = None) -> bytes:
        fields = {"usage": usage} if usage is not None else {}
        body = Completion(
            id=ctx.id,
            object="text_completion",
            created=ctx.created,
            model=ctx.model,
            choices=choices,
            system_fingerprint=FINGERPRINT,
            **fields,  # type: ignore[arg-type]
        )
        return body.model_dump_json(exclude_unset=True).encode()

    offsets = [len(e) for e in ctx.echo]
    out = [
        chunk([CompletionChoice(index=i, text=e, logprobs=None, finish_reason=None)])
        for i, e in enumerate(ctx.echo)
        if e
    ]
    tokens = 0
    for index, d in items:
        tokens += len(d.token_ids)
        if not (d.text or d.finish_reason or d.logprobs):
            continue
        lp = None
        if ctx.logprobs is not None:
            lp = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
            for e in d.logprobs or []:
                lp.tokens.append(e.token)
                lp.token_logprobs.append(e.logprob)
                lp.top_logprobs.append(completion_top(e, ctx.logprobs))
                lp.text_offset.append(offsets[index])
                offsets[index] += len(e.token)
        last = {"stop_reason": d.stop_reason} if d.finish_reason else {}
        choice = CompletionChoice(
            index=index, text=d.text, logprobs=lp, finish_reason=d.finish_reason, **last
        )
        out.append(chunk([choice]))
    if include_usage:
        out.append(chunk([], usage=Usage.of(ctx.prompt_tokens, tokens)))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("echo", "logprobs"), [([""], None), (["", ""], 2), (["Once ☕", 'a "b"'], None)])
async def test_completion_stream_events_equal_pydantic_model_dump_json(
    seed: int, echo: list[str], logprobs: int | None
) -> None:
    rng = random.Random(seed)
    items = random_deltas(rng, len(echo), logprobs=logprobs is not None)
    ctx = cmpl_ctx(echo, logprobs)
    include_usage = bool(seed % 2)
    events = await drain(stream_completion(ctx, feed(items), include_usage))
    assert events == expected_completion_stream(ctx, items, include_usage)


def finite(items: list[tuple[int, Delta]]) -> list[tuple[int, Delta]]:
    """JSONResponse refuses inf, as it did before; whole answers are compared on finite logprobs."""
    for _, d in items:
        for e in d.logprobs or []:
            object.__setattr__(e, "logprob", -1.5)
            for t in e.top:
                object.__setattr__(t, "logprob", -2.5)
    return items


def json_response_bytes(body: Any) -> bytes:
    """What starlette's JSONResponse writes for a dict."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("n", "top_logprobs"), [(1, None), (2, 3)])
async def test_whole_chat_answer_equals_the_model_dump_it_replaces(
    seed: int, n: int, top_logprobs: int | None
) -> None:
    rng = random.Random(seed)
    items = finite(random_deltas(rng, n, logprobs=top_logprobs is not None))
    ctx = chat_ctx(n, top_logprobs)
    body = await collect_chat(ctx, feed(items))
    texts = ["".join(d.text for i, d in items if i == c) for c in range(n)]
    reasons = [next(d.finish_reason for i, d in items if i == c and d.finish_reason) for c in range(n)]
    stops = [next(d.stop_reason for i, d in items if i == c and d.finish_reason) for c in range(n)]
    entries = [[e for i, d in items if i == c for e in d.logprobs or []] for c in range(n)]
    reference = ChatCompletion(
        id=ctx.id,
        object="chat.completion",
        created=ctx.created,
        model=ctx.model,
        choices=[
            ChatChoice(
                index=c,
                message=AssistantMessage(role="assistant", content=texts[c], refusal=None),
                logprobs=None if top_logprobs is None else pydantic_chat_logprobs(entries[c], top_logprobs),
                finish_reason=reasons[c],  # type: ignore[arg-type]
                stop_reason=stops[c],
                token_ids=None,
            )
            for c in range(n)
        ],
        usage=Usage.of(ctx.prompt_tokens, sum(len(d.token_ids) for _, d in items)),
        system_fingerprint=FINGERPRINT,
        prompt_logprobs=None,
        prompt_token_ids=None,
    )
    assert json_response_bytes(body) == json_response_bytes(reference.model_dump())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("echo", "logprobs"), [(["", ""], None), (["", ""], 2), (["Once ☕"], None)])
async def test_whole_completion_equals_the_model_dump_it_replaces(
    seed: int, echo: list[str], logprobs: int | None
) -> None:
    rng = random.Random(seed)
    items = finite(random_deltas(rng, len(echo), logprobs=logprobs is not None))
    ctx = cmpl_ctx(echo, logprobs)
    body = await collect_completion(ctx, feed(items))
    # The stream's chunks, merged per choice, are the whole answer.
    choices: list[CompletionChoice] = []
    for c, prefix in enumerate(echo):
        mine = [d for i, d in items if i == c]
        lp = None
        if logprobs is not None:
            lp = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
            offset = len(prefix)
            for e in (e for d in mine for e in d.logprobs or []):
                lp.tokens.append(e.token)
                lp.token_logprobs.append(e.logprob)
                lp.top_logprobs.append(completion_top(e, logprobs))
                lp.text_offset.append(offset)
                offset += len(e.token)
        last = next(d for d in mine if d.finish_reason)
        text = prefix + "".join(d.text for d in mine)
        choices.append(
            CompletionChoice(
                index=c,
                text=text,
                logprobs=lp,
                finish_reason=last.finish_reason,
                stop_reason=last.stop_reason,
            )
        )
    reference = Completion(
        id=ctx.id,
        object="text_completion",
        created=ctx.created,
        model=ctx.model,
        choices=choices,
        usage=Usage.of(ctx.prompt_tokens, sum(len(d.token_ids) for _, d in items)),
        system_fingerprint=FINGERPRINT,
    )
    assert json_response_bytes(body) == json_response_bytes(reference.model_dump())


async def test_stream_closes_the_deltas_when_it_is_closed_early() -> None:
    closed = False

    async def deltas() -> AsyncGenerator[tuple[int, Delta], None]:
        nonlocal closed
        try:
            while True:
                yield 0, Delta("x", [1])
        finally:
            closed = True

    stream = stream_chat(chat_ctx(), deltas(), include_usage=True)
    assert b'"role":"assistant"' in await anext(stream)
    assert b'"content":"x"' in await anext(stream)
    await stream.aclose()
    assert closed


async def test_stream_sends_the_role_chunk_only_once_the_engine_gave_output() -> None:
    """TTFT as clients measure it: the first chunk with choices must not come before the prefill."""
    pulled: list[str] = []

    async def deltas() -> AsyncGenerator[tuple[int, Delta], None]:
        pulled.append("first output")
        yield 0, Delta("x", [1])

    stream = stream_chat(chat_ctx(), deltas(), include_usage=False)
    first = await anext(stream)
    assert b'"role":"assistant"' in first
    assert pulled == ["first output"]
    await stream.aclose()


async def test_stream_without_any_output_sends_no_role_chunk() -> None:
    async def deltas() -> AsyncGenerator[tuple[int, Delta], None]:
        return
        yield  # an async generator that ends at once

    events = [e async for e in stream_chat(chat_ctx(), deltas(), include_usage=True)]
    assert len(events) == 1
    assert b'"usage"' in events[0]
