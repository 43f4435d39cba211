"""Tiny checkpoints of the other shapes users bring, built by the embedded model's own generator
(server/engine/tiny.py) from a config: random weights, the real Mistral v1 tokenizer (v3 for the
v0.3 shape)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from server.engine.base import Engine
from server.engine.tiny import TINY_CONFIG, TinyModel, ensure_model
from server.prompt.known_templates import MISTRAL_7B_INSTRUCT_V01

_SMALL = {k: TINY_CONFIG[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers")}

# Mistral-7B-Instruct-v0.1's config, cut down: dense MLP, grouped-query attention (8 query heads
# share 2 KV heads, 32/8 in the real one) and a sliding window, here 16 tokens, so that a test
# prompt is longer than the window.
SLIDING_WINDOW = 16
MISTRAL_7B: dict[str, Any] = {
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "vocab_size": 32000,
    **_SMALL,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-05,
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
    "sliding_window": SLIDING_WINDOW,
    "torch_dtype": "bfloat16",
}
TINY_MISTRAL_7B_INSTRUCT = TinyModel("tiny-mistral-7b-instruct", MISTRAL_7B, MISTRAL_7B_INSTRUCT_V01)

# Chinese-Mixtral-8x7B: Mixtral with a 57,000-token vocabulary and no chat template (a base model).
# The real one extends Mixtral's SentencePiece model itself with Chinese pieces and resizes the
# embedding. The tiny one does the same with a few Chinese words (SentencePiece ids 32,000 on),
# and gives the embedding all 57,000 rows: larger than the tokenizer's 32,006, so the model can
# also produce ids no tokenizer entry names, as checkpoints padded to a round vocabulary do.
EXTENDED_VOCAB_SIZE = 57000
CHINESE_WORDS = ("你好", "世界", "中文", "模型", "专家", "混合")
TINY_CHINESE_MIXTRAL = TinyModel(
    "tiny-chinese-mixtral",
    {**TINY_CONFIG, "vocab_size": EXTENDED_VOCAB_SIZE},
    chat_template=None,
    extra_pieces=CHINESE_WORDS,
)


# Mistral-7B-Instruct-v0.3's shape: dense, the v3 tokenizer (32,768 pieces, [INST] and the tool
# markers as control tokens). Its chat template is the v3 [INST] format for text conversations,
# written here (v0.3's own jinja is not reproduced): "[INST]" and "[/INST]" with no spaces around
# the text, a system prompt before the LAST user message, as mistral-common's v3 encoder does.
# Chat with tools on such checkpoints is encoded by server/prompt/mistral_v3.py, not by a template.
MISTRAL_V3_TEXT_TEMPLATE = (
    "{%- set ns = namespace(system='', last_user=-1) %}"
    "{%- for m in messages %}"
    "{%- if m['role'] == 'system' and m['content'] %}"
    "{%- set ns.system = ns.system + ('\\n\\n' if ns.system else '') + m['content'] %}"
    "{%- endif %}{%- endfor %}"
    "{%- set loop_messages = messages | rejectattr('role', 'equalto', 'system') | list %}"
    "{%- for m in loop_messages %}{%- if m['role'] == 'user' %}{%- set ns.last_user = loop.index0 %}"
    "{%- endif %}{%- endfor %}"
    "{{- bos_token }}"
    "{%- for m in loop_messages %}"
    "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}"
    "{%- endif %}"
    "{%- if m['role'] == 'user' and loop.index0 == ns.last_user and ns.system %}"
    "{{- '[INST]' + ns.system + '\\n\\n' + m['content'] + '[/INST]' }}"
    "{%- elif m['role'] == 'user' %}{{- '[INST]' + m['content'] + '[/INST]' }}"
    "{%- elif m['role'] == 'assistant' %}{{- m['content'].rstrip(' ') + eos_token }}"
    "{%- else %}{{- raise_exception('Only user, assistant and system roles are supported!') }}"
    "{%- endif %}{%- endfor %}"
)
V3_VOCAB_SIZE = 32768
TINY_MISTRAL_7B_INSTRUCT_V03 = TinyModel(
    "tiny-mistral-7b-instruct-v0.3",
    {**MISTRAL_7B, "vocab_size": V3_VOCAB_SIZE, "sliding_window": None, "rope_theta": 1000000.0},
    chat_template=MISTRAL_V3_TEXT_TEMPLATE,
    tokenizer="v3",
)


@asynccontextmanager
async def running(recipe: TinyModel, **overrides: object) -> AsyncIterator[Engine]:
    """The real engine on `recipe`'s checkpoint (generated on first use), stopped at the end."""
    from server.engine.vllm import VLLMEngine
    from tests.conftest import cache_dir, engine_settings

    path = ensure_model(cache_dir(), recipe)
    engine = await VLLMEngine.start(engine_settings(model=str(path), max_model_len=512, **overrides))
    try:
        yield engine
    finally:
        await engine.shutdown()
