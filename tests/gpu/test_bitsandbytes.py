"""bitsandbytes 4-bit, quantized while loading, on the tiny Mistral-7B (needs a CUDA GPU and the
bitsandbytes package; vLLM 0.32 dropped the method, so only vLLM releases that still have it run it).

Dense models only: on Mixtral vLLM 0.26's bitsandbytes loader fails at start, so the server refuses
that pairing before the engine starts (tests/unit/engine/test_quantization.py). The CPU tests cannot cover
this: vLLM's bitsandbytes loader quantizes on the GPU."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from server.engine.tiny import ensure_model
from tests.conftest import cache_dir
from tests.e2e.server_process import running_server
from tests.helpers import chat
from tests.tiny_models import TINY_MISTRAL_7B_INSTRUCT

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="bitsandbytes quantizes on a CUDA GPU"),
]


def test_bitsandbytes_4bit_serves_chat_on_a_dense_model(tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    if "bitsandbytes" not in QUANTIZATION_METHODS:
        pytest.skip("this vLLM has no bitsandbytes method")
    model = ensure_model(cache_dir(), TINY_MISTRAL_7B_INSTRUCT)
    log = tmp_path / "bnb.log"
    flags = (
        "--model",
        str(model),
        "--quantization",
        "bitsandbytes",
        "--max-model-len",
        "512",
        "--enforce-eager",
    )
    with running_server(*flags, "--api-server-count", "1", log=log) as url:
        resp = httpx.post(
            f"{url}/v1/chat/completions",
            json=chat("Hello there", max_tokens=12, temperature=0, min_tokens=12),
            timeout=120,
        )
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["completion_tokens"] == 12
    text = log.read_text(errors="replace")
    assert "Loading weights with BitsAndBytes quantization" in text
    assert "quantization=bitsandbytes" in text
