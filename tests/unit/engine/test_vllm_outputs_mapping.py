"""The engine side of vLLM's output extensions: max_tokens 0 (score the prompt only), the prompt's
logprobs, and token texts that keep SentencePiece's word-start space.

Imports vllm (no engine is started)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from vllm.logprobs import Logprob

from server.engine.base import SamplingOptions
from server.engine.tiny import write_mistral_v1_tokenizer
from server.engine.token_text import SequenceText, TokenPieces
from server.engine.vllm import _delta, to_sampling_params
from server.engine.vllm_logprobs import MIN_LOGPROB, RequestTexts, prompt_logprobs

NO_TEXTS = RequestTexts(None, logprobs=False, prompt_logprobs=False)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    directory: Path = tmp_path_factory.mktemp("mistral-v1")
    write_mistral_v1_tokenizer(directory)
    return AutoTokenizer.from_pretrained(str(directory))


def test_max_tokens_zero_asks_vllm_for_one_token_and_the_prompt_logprobs() -> None:
    params = to_sampling_params(SamplingOptions(max_tokens=0, prompt_logprobs=2))
    assert params.max_tokens == 1 and params.prompt_logprobs == 2
    assert to_sampling_params(SamplingOptions(max_tokens=5)).prompt_logprobs is None


def request_output(prompt_logprobs: list | None, reason: str | None = "length") -> SimpleNamespace:
    generated = SimpleNamespace(
        text=" x", token_ids=[42], finish_reason=reason, logprobs=None, stop_reason=None
    )
    return SimpleNamespace(outputs=[generated], prompt_logprobs=prompt_logprobs, num_cached_tokens=3)


def test_max_tokens_zero_drops_the_token_vllm_made_and_keeps_the_prompt_logprobs() -> None:
    raw = [None, {5: Logprob(-1.0, 4, None), 9: Logprob(-0.5, 1, None)}]
    delta = _delta(request_output(raw), SamplingOptions(max_tokens=0, logprobs=1), [1, 5], NO_TEXTS)
    assert (delta.text, delta.token_ids, delta.logprobs, delta.finish_reason) == ("", [], [], "length")
    assert delta.num_cached_prompt_tokens == 3
    assert delta.prompt_logprobs is not None and delta.prompt_logprobs[0] is None
    second = delta.prompt_logprobs[1]
    assert second is not None and (second.token_id, second.logprob, second.rank) == (5, -1.0, 4)
    assert [t.token_id for t in second.top] == [9, 5]  # by rank


def test_a_normal_delta_carries_its_token_and_no_prompt_logprobs_unless_vllm_sent_them() -> None:
    delta = _delta(request_output(None, None), SamplingOptions(max_tokens=4), [1, 5], NO_TEXTS)
    assert (delta.text, delta.token_ids, delta.prompt_logprobs) == (" x", [42], None)


def test_prompt_logprobs_clamp_minus_infinity_and_start_where_the_prompt_ids_say() -> None:
    raw = [{8: Logprob(float("-inf"), 900, "eight")}]
    entries = prompt_logprobs([8, 3], raw, None)
    assert len(entries) == 1 and entries[0] is not None
    assert entries[0].logprob == MIN_LOGPROB and entries[0].token == "eight"


def test_prompt_token_texts_keep_the_word_start_space_and_concatenate_to_the_text(tokenizer: Any) -> None:
    text = "Hello world, naïve café\nnew line 123 你好"
    ids = [tokenizer.bos_token_id, *tokenizer.encode(text, add_special_tokens=False)]
    raw = [None] + [{t: Logprob(-1.0, 1, None)} for t in ids[1:]]
    entries = prompt_logprobs(ids, raw, SequenceText(TokenPieces(tokenizer)))
    assert entries[0] is None  # BOS: nothing precedes it
    tokens = [e.token for e in entries[1:] if e is not None]
    assert "".join(tokens) == " " + text  # SentencePiece's space before the first word
    assert tokens[1].startswith(" ")
