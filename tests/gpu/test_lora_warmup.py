"""No kernel is compiled while serving LoRA requests (needs a CUDA GPU, like test_lora_merge.py).

vLLM's LoRA kernels are Triton kernels compiled on first use of each shape class. CUDA-graph
capture covers decode-sized batches; prefills above the largest captured size run eagerly, so the
warm-up sends its prompt sizes through an adapter as well as through the base model. The server
runs with CUDA graphs (no --enforce-eager) and --log-kernel-compiles, which makes vLLM log every
compile after its start-up as "... during inference: <kernel>": after our warm-up, no adapter or
base request of any size must produce one.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from server.engine.tiny import ensure_tiny_model
from tests.conftest import cache_dir
from tests.e2e.server_process import running_server
from tests.lora_adapter import make_adapter, make_lora_base

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="LoRA on Mixtral needs a CUDA GPU"),
]

MAX_MODEL_LEN = 2048  # above vLLM's largest captured CUDA graph (512 tokens): eager prefills too
# Prompt lengths away from the warm-up's own sizes (32 and 520...2047 at M % 8 in {0, 3, 4}), in
# the captured range and in each eager size class, at each residue class the warm-up covers.
PROMPT_LENGTHS = (7, 100, 333, 600, 611, 700, 1100, 1203, 1500, 1900, 2000)
COMPILE_MARK = "during inference:"


async def complete(http: httpx.AsyncClient, model: str, length: int, rng: random.Random) -> None:
    ids = [rng.randrange(100, 1000) for _ in range(length)]
    body = {"model": model, "prompt": ids, "max_tokens": 4, "temperature": 0, "ignore_eos": True}
    resp = await http.post("/v1/completions", json=body)
    assert resp.status_code == 200, resp.text


async def serve_every_shape(url: str) -> None:
    rng = random.Random(0)
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for length in PROMPT_LENGTHS:  # one at a time: each prompt is its own prefill step
            await complete(http, "zh-lora", length, rng)
            await complete(http, "base", length, rng)
        # Adapter and base requests in one batch, as a mixed load schedules them.
        mixed = [complete(http, m, n, rng) for n in (40, 900) for m in ("zh-lora", "base") for _ in range(3)]
        await asyncio.gather(*mixed)


def test_no_kernel_compiles_while_serving_adapters(tmp_path: Path) -> None:
    base = make_lora_base(ensure_tiny_model(cache_dir()), tmp_path / "base")
    adapter = make_adapter(base, tmp_path / "adapter", seed=0)
    log = tmp_path / "server.log"
    with running_server(
        "--model", str(base), "--served-model-name", "base", "--lora-modules", f"zh-lora={adapter}",
        "--dtype", "float16", "--max-model-len", str(MAX_MODEL_LEN), "--api-server-count", "1",
        "--log-kernel-compiles",
        log=log,
    ) as url:  # fmt: skip
        text = log.read_text(errors="replace")
        assert "warm-up of adapter 'zh-lora'" in text, "the warm-up did not run through the adapter"
        served_from = len(text)
        asyncio.run(serve_every_shape(url))
    served = log.read_text(errors="replace")[served_from:]
    compiles = [line for line in served.splitlines() if COMPILE_MARK in line]
    print(f"compiles while serving: {len(compiles)}")  # noqa: T201
    assert compiles == []
