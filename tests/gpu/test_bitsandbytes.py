"""bitsandbytes 4-bit, quantized while loading, on the tiny Mixtral (needs a CUDA GPU and the
bitsandbytes package; vLLM 0.32 dropped the method, so only vLLM releases that still have it run it).

The CPU tests cannot cover this: vLLM's bitsandbytes loader quantizes on the GPU."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.server_process import running_server
from tests.helpers import chat

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="bitsandbytes quantizes on a CUDA GPU"),
]


def test_bitsandbytes_4bit_serves_chat(tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    if "bitsandbytes" not in QUANTIZATION_METHODS:
        pytest.skip("this vLLM has no bitsandbytes method")
    log = tmp_path / "bnb.log"
    flags = ("--quantization", "bitsandbytes", "--max-model-len", "512", "--enforce-eager")
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
