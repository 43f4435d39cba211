"""`system_fingerprint`: which backend configuration answered, as OpenAI's responses say.

OpenAI documents it for use with `seed`: a client that sees it change knows that results may differ
for reasons other than its own request. So it is derived only from what decides the numbers (this
server's version, the engine's, the model and how it is loaded) and nothing per process or per
start: every restart and every front-end process of one deployment reports the same value.
"""

from __future__ import annotations

import hashlib

from server import __version__
from server.config import Settings
from server.engine.base import ModelCard


def system_fingerprint(card: ModelCard, settings: Settings) -> str:
    facts = [
        f"mixtral-serve {__version__}",
        card.engine_version,
        card.name,
        card.root,
        f"max_model_len={card.max_model_len}",
        f"vocab_size={card.vocab_size}",
        f"dtype={settings.dtype}",
        f"quantization={settings.quantization}",
        f"load_format={settings.load_format}",
        f"tensor_parallel_size={settings.tensor_parallel_size}",
    ]
    return "fp_" + hashlib.sha256("\n".join(facts).encode()).hexdigest()[:10]
