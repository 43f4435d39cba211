"""`mixtral-serve quantize SRC DST --scheme w4a16`: a bf16 checkpoint folder rewritten as a 4-bit one
that `mixtral-serve --model DST` serves with no quantization flag (the method is in its config.json).

A subcommand rather than a Settings flag: it starts no server and shares none of the server's
settings. Exit status: 0 when DST is complete, 1 when the checkpoint cannot be quantized (the reason
on stderr; DST may hold part of the output), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from server.engine import quantization_schemes, quantize_checkpoint

GIB = 1 << 30


def parser() -> argparse.ArgumentParser:
    schemes = quantization_schemes()
    result = argparse.ArgumentParser(
        prog="mixtral-serve quantize",
        description="Quantize a bf16 Mixtral or Mistral checkpoint to 4-bit weights (compressed-tensors, "
        "round-to-nearest, symmetric int4, groups of 128), shard by shard, on the CPU.",
    )
    result.add_argument("src", type=Path, help="the bf16 checkpoint folder (config.json, *.safetensors)")
    result.add_argument("dst", type=Path, help="the new folder to write (must not exist or be empty)")
    result.add_argument("--scheme", choices=schemes, default=schemes[0], help="default: %(default)s")
    return result


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        report = quantize_checkpoint(args.src, args.dst, args.scheme)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"mixtral-serve quantize: error: {exc}\n")
        return 1
    sys.stdout.write(
        f"{args.dst}: {report.quantized} weights quantized, {report.copied} tensors kept, "
        f"{report.bytes_in / GIB:.2f} GiB -> {report.bytes_out / GIB:.2f} GiB; "
        f"serve it with: mixtral-serve --model {args.dst}\n"
    )
    return 0
