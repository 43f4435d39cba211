"""LangChain's ChatOpenAI pointed at a real `mixtral-serve`: invoke, stream, async, and a multi-turn
history with a system message, as a LangChain application would use it."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI


@pytest.fixture(scope="module")
def server_url(shared_server_url: str) -> str:
    return shared_server_url


@pytest.fixture(scope="module")
def llm(server_url: str) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{server_url}/v1",
        api_key="unused",
        model="tiny-mixtral",
        max_tokens=8,
        temperature=0,
        max_retries=0,
    )


def test_invoke_returns_an_ai_message_with_usage(llm: ChatOpenAI) -> None:
    answer = llm.invoke("Hello there")
    assert isinstance(answer, AIMessage) and isinstance(answer.content, str) and answer.content
    assert answer.response_metadata["finish_reason"] == "length"
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] == 8


def test_stream_gives_the_same_text_in_pieces(llm: ChatOpenAI) -> None:
    whole = llm.invoke("Hello there").content
    pieces = [chunk.content for chunk in llm.stream("Hello there")]
    assert len([p for p in pieces if p]) > 1
    assert "".join(str(p) for p in pieces) == whole


def test_history_with_a_system_message(llm: ChatOpenAI) -> None:
    history = [
        SystemMessage("Be brief."),
        HumanMessage("Hi"),
        AIMessage("Hello!"),
        HumanMessage("How are you?"),
    ]
    answer = llm.invoke(history)
    assert answer.content and answer.usage_metadata is not None
    short = llm.invoke([HumanMessage("How are you?")])
    assert short.usage_metadata is not None
    assert answer.usage_metadata["input_tokens"] > short.usage_metadata["input_tokens"]


def test_async_invoke_and_batch(llm: ChatOpenAI) -> None:
    async def run() -> list[str]:
        one = await llm.ainvoke("Hello there")
        many = await llm.abatch(["One", "Two", "Three"])
        return [str(one.content)] + [str(m.content) for m in many]

    texts = asyncio.run(run())
    assert len(texts) == 4 and all(texts)
