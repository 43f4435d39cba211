"""Chat templates as checkpoints ship them, verbatim. No imports: the benchmark hosts load this file
without the server's dependencies (through server/engine/tiny.py).

Mixtral-8x7B-Instruct-v0.1 and Mistral-7B-Instruct-v0.1/v0.2 ship these in tokenizer_config.json;
server/prompt/template.py recognises them (and any template that renders the same [INST] format)
and serves them with its own renderer, golden-tested against mistral-common.
"""

from __future__ import annotations

# mistralai/Mixtral-8x7B-Instruct-v0.1, tokenizer_config.json as first published.
MIXTRAL_INSTRUCT_V01 = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)

# The same repository's later revision: an optional system message goes before the first user text.
MIXTRAL_INSTRUCT_V01_SYSTEM = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}"
    "{%- endif %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.first and system_message is defined %}"
    "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token}}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported, with the "
    "exception of an initial optional system message!') }}"
    "{%- endif %}{%- endfor %}"
)

# mistralai/Mistral-7B-Instruct-v0.1: the [INST] format, a space after each EOS.
MISTRAL_7B_INSTRUCT_V01 = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)

KNOWN_MIXTRAL_INSTRUCT = frozenset(
    {MIXTRAL_INSTRUCT_V01, MIXTRAL_INSTRUCT_V01_SYSTEM, MISTRAL_7B_INSTRUCT_V01}
)
