"""The embedded default model: a tiny Mixtral-architecture checkpoint generated, seeded, on first use.

Same architecture as Mixtral-8x7B (sparse MoE, 8 experts, top-2, grouped-query attention, the real
Mistral v1 tokenizer) at 23 M parameters, so the engine runs the same fused-MoE path and the same
chat template on a laptop CPU. Its weights are random: its text is noise.

Generated into the cache directory once; a finished copy is renamed into place atomically, so two
servers starting together never see half a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SEED = 0
GENERATOR_VERSION = 2  # bump when the files written below change in a way the configs do not show

# Mixtral-8x7B's config with the sizes cut down; everything else is Mixtral's own.
TINY_CONFIG: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "vocab_size": 32000,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-05,
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
    "sliding_window": None,
    "torch_dtype": "bfloat16",
}

# The generic fast class loads tokenizer.json exactly as written; transformers' LlamaTokenizer
# class would replace its normalizer and lose SentencePiece's "▁" before a leading space.
TOKENIZER_CONFIG: dict[str, object] = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "add_bos_token": True,
    "add_eos_token": False,
    "legacy": True,
    "clean_up_tokenization_spaces": False,
    "model_max_length": 32768,
}


def tiny_model_dirname() -> str:
    """Named by a fingerprint of what goes into it, so a changed generator never reuses a stale copy."""
    recipe = json.dumps([GENERATOR_VERSION, SEED, TINY_CONFIG, TOKENIZER_CONFIG], sort_keys=True)
    return f"tiny-mixtral-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


def write_mistral_v1_tokenizer(directory: Path) -> None:
    """Put Mixtral's tokenizer (mistral-common's byte-identical copy) into `directory`.

    Besides tokenizer.model we write the tokenizer.json that Mixtral's own checkpoint ships: the
    fast tokenizer that transformers converts from a bare SentencePiece file ranks the whitespace
    merges ("▁▁") first and drops the dummy prefix, so its ids differ from SentencePiece's.
    """
    source = resources.files("mistral_common") / "data" / "tokenizer.model.v1"
    with resources.as_file(source) as path:
        shutil.copyfile(path, directory / "tokenizer.model")
    (directory / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
    (directory / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2)
    )
    (directory / "tokenizer.json").write_text(_sentencepiece_faithful_json(directory), encoding="utf-8")


def _sentencepiece_faithful_json(directory: Path) -> str:
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sp = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    converted = json.loads(AutoTokenizer.from_pretrained(str(directory)).backend_tokenizer.to_str())
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in converted["model"]["merges"]]

    def rank(merge: tuple[str, ...]) -> tuple[float, int, int]:
        # SentencePiece merges the pair whose result scores highest; ties by piece id.
        merged = sp.piece_to_id(merge[0] + merge[1])
        return (-sp.get_score(merged), merged, sp.piece_to_id(merge[0]))

    converted["model"]["merges"] = [list(m) for m in sorted(merges, key=rank)]
    converted["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ],
    }
    converted["pre_tokenizer"] = None
    converted["decoder"] = {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    }
    return json.dumps(converted, ensure_ascii=False)


def _generate(directory: Path) -> None:
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(SEED)
    config = MixtralConfig(**TINY_CONFIG)
    model: Any = MixtralForCausalLM(config)  # type: ignore[no-untyped-call]
    model = model.to(torch.bfloat16)
    model.save_pretrained(directory, safe_serialization=True)
    # save_pretrained rewrites config.json; keep the dtype explicit for the engine's "auto".
    saved = json.loads((directory / "config.json").read_text())
    saved["torch_dtype"] = "bfloat16"
    (directory / "config.json").write_text(json.dumps(saved, indent=2))
    write_mistral_v1_tokenizer(directory)
    (directory / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))


def ensure_tiny_model(cache_dir: Path) -> Path:
    """Return the embedded model's folder, generating it the first time."""
    target = cache_dir / tiny_model_dirname()
    if (target / "config.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    logger.info("generating the embedded tiny Mixtral into %s (first start only)", target)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=cache_dir))
    try:
        _generate(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").exists():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def prepare_dummy_checkpoint(config_path: Path, out_dir: Path) -> Path:
    """A folder with a real model config and Mixtral's tokenizer, for `--load-format dummy` runs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_path, out_dir / "config.json")
    write_mistral_v1_tokenizer(out_dir)
    return out_dir
