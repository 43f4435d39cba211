"""The embedded default model: a tiny Mixtral-architecture checkpoint generated, seeded, on first use.

Same architecture as Mixtral-8x7B (sparse MoE, 8 experts, top-2, grouped-query attention, the real
Mistral v1 tokenizer) at 23 M parameters, so the engine runs the same fused-MoE path and the same
chat template on a laptop CPU. Its weights are random: its text is noise.

Generated into the cache directory once; a finished copy is renamed into place atomically, so two
servers starting together never see half a checkpoint.

The generator takes a `TinyModel` recipe, so the tests build the other shapes users bring (a dense
Mistral-7B with a sliding window, a base model without a chat template, an extended vocabulary)
with this same code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from server.prompt.known_templates import MIXTRAL_INSTRUCT_V01

logger = logging.getLogger(__name__)

SEED = 0
GENERATOR_VERSION = 3  # bump when the files written below change in a way the configs do not show

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


@dataclass(frozen=True)
class TinyModel:
    """What one generated checkpoint holds: a transformers config (its `architectures[0]` picks the
    class), the chat template its tokenizer_config ships (None: a base model), and pieces added to
    Mistral's v1 SentencePiece model (ids from 32,000 on), the way extended vocabularies such as
    Chinese-Mixtral's are built. `tokenizer`: Mistral's v1 tokenizer (32,000 pieces: Mixtral-8x7B,
    Mistral-7B v0.1/v0.2) or v3 (32,768 with the control tokens of the [INST] markers and of tools:
    Mistral-7B-Instruct-v0.3, Mixtral-8x22B)."""

    name: str
    config: dict[str, Any]
    chat_template: str | None = MIXTRAL_INSTRUCT_V01
    extra_pieces: tuple[str, ...] = field(default=())
    tokenizer: Literal["v1", "v3"] = "v1"

    def dirname(self) -> str:
        """Named by a fingerprint of what goes into it, so a changed generator never reuses a stale copy."""
        parts: list[object] = [
            GENERATOR_VERSION,
            SEED,
            self.config,
            TOKENIZER_CONFIG,
            self.chat_template,
            self.extra_pieces,
        ]
        if self.tokenizer != "v1":  # the v1 recipes keep the names (and cached copies) they had
            parts.append(self.tokenizer)
        recipe = json.dumps(parts, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


# The embedded default: Mixtral-8x7B-Instruct's shape and chat template.
TINY_MIXTRAL = TinyModel("tiny-mixtral", TINY_CONFIG)


def write_mistral_v1_tokenizer(
    directory: Path, chat_template: str | None = MIXTRAL_INSTRUCT_V01, extra_pieces: tuple[str, ...] = ()
) -> None:
    """Put Mixtral's tokenizer (mistral-common's byte-identical copy) into `directory`.

    Besides tokenizer.model we write the tokenizer.json that Mixtral's own checkpoint ships: the
    fast tokenizer that transformers converts from a bare SentencePiece file ranks the whitespace
    merges ("▁▁") first and drops the dummy prefix, so its ids differ from SentencePiece's.
    """
    _write_sentencepiece_tokenizer(directory, "tokenizer.model.v1", chat_template, extra_pieces)


def write_mistral_v3_tokenizer(directory: Path, chat_template: str | None) -> None:
    """Put Mistral's v3 tokenizer (mistral-common's copy, as Mistral-7B-Instruct-v0.3 ships it) into
    `directory`: 32,768 pieces, of which ids 1 to 750 are control tokens (BOS, EOS, [INST], [/INST],
    the five tool tokens, then [control_N] placeholders). tokenizer.json declares each a special
    token, so a prompt's markup gets them as single ids while message text spelling them stays text,
    as in mistral-common, whose SentencePiece never parses control pieces out of text. (The 20
    user-defined pieces after them, "[REFERENCE_DOC_n]", stay added tokens that text does match, as
    in SentencePiece, but the "▁" around them can differ from SentencePiece's.)"""
    _write_sentencepiece_tokenizer(directory, "mistral_instruct_tokenizer_240323.model.v3", chat_template, ())


def _write_sentencepiece_tokenizer(
    directory: Path, model_name: str, chat_template: str | None, extra_pieces: tuple[str, ...]
) -> None:
    source = resources.files("mistral_common") / "data" / model_name
    with resources.as_file(source) as path:
        shutil.copyfile(path, directory / "tokenizer.model")
    if extra_pieces:
        _extend_sentencepiece(directory / "tokenizer.model", extra_pieces)
    (directory / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
    (directory / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2)
    )
    tokenizer_json = _sentencepiece_faithful_json(directory)
    (directory / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    if chat_template is not None:  # written last: the conversion above must not see it
        config = dict(TOKENIZER_CONFIG, chat_template=chat_template)
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _extend_sentencepiece(model_file: Path, pieces: tuple[str, ...]) -> None:
    """Append `pieces` to the SentencePiece model, scored above every merge they are made of, as
    Chinese-LLaMA's and Chinese-Mixtral's tokenizer merging does (each piece must be a
    concatenation of pieces already there, so BPE can reach it)."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    model: Any = model_pb2.ModelProto()  # type: ignore[attr-defined]
    model.ParseFromString(model_file.read_bytes())
    for piece in pieces:
        added = model.pieces.add()
        added.piece, added.score = piece, -1.0
    model_file.write_bytes(model.SerializeToString())


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


def _generate(directory: Path, recipe: TinyModel) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(SEED)
    config = AutoConfig.for_model(**recipe.config)
    model: Any = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    model = model.to(torch.bfloat16)
    model.save_pretrained(directory, safe_serialization=True)
    # save_pretrained rewrites config.json; keep the dtype explicit for the engine's "auto".
    saved = json.loads((directory / "config.json").read_text())
    saved["torch_dtype"] = "bfloat16"
    (directory / "config.json").write_text(json.dumps(saved, indent=2))
    if recipe.tokenizer == "v3":
        write_mistral_v3_tokenizer(directory, recipe.chat_template)
    else:
        write_mistral_v1_tokenizer(directory, recipe.chat_template, recipe.extra_pieces)
    (directory / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))


def ensure_tiny_model(cache_dir: Path) -> Path:
    """Return the embedded model's folder, generating it the first time."""
    return ensure_model(cache_dir, TINY_MIXTRAL)


def ensure_model(cache_dir: Path, recipe: TinyModel) -> Path:
    """Return the folder of `recipe`'s checkpoint under `cache_dir`, generating it the first time."""
    target = cache_dir / recipe.dirname()
    if (target / "config.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    logger.info("generating the tiny model %s into %s (first start only)", recipe.name, target)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=cache_dir))
    try:
        _generate(staging, recipe)
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
