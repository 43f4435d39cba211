#!/usr/bin/env bash
# One measured run of bench/tools/serve_bench.py on a machine with two GPUs (Mixtral-8x7B's config,
# dummy weights, TP=2). Each run fits one 10-minute slot; run them back to back on one machine.
#
#   bash bench/tools/gpu_bench.sh RUN OUT  RUN: vllm-bf16 | ours-bf16 | ours-bf16-restart | ours-fp8
#
# ours-bf16-restart starts our server again on the same machine after ours-bf16: its compile caches
# (under --cache-dir) are warm, so its time to ready is the warm start; it repeats two points.
#
# Both servers get the same engine arguments and the same number of front-end processes; those are
# also our defaults on GPUs (--api-server-count 4, --max-num-batched-tokens 2048), so ours-bf16 is
# at once the like-for-like comparison and "what users get with no tuning flags".
set -euo pipefail
run=$1
out=$2
mkdir -p "$out"
engine=(--tensor-parallel-size 2 --max-model-len 4096 --load-format dummy --served-model-name mixtral-8x7b
        --max-num-batched-tokens 2048 --api-server-count 4)
bench=(python bench/tools/serve_bench.py run --out "$out" --prepare-dummy bench/models/mixtral-8x7b
       --deadline 560)
points=256:1500,64:640,16:320,1:24
case $run in
  vllm-bf16) "${bench[@]}" --server vllm --label "$run" --points "$points" --warmup 256:300 -- "${engine[@]}" ;;
  ours-bf16) "${bench[@]}" --server ours --label "$run" --points "$points" --warmup 256:300 \
               -- "${engine[@]}" --log-kernel-compiles ;;
  ours-bf16-restart) "${bench[@]}" --server ours --label "$run" --points 256:1500,16:320 --warmup 256:300 \
               -- "${engine[@]}" --log-kernel-compiles ;;
  ours-fp8)  "${bench[@]}" --server ours --label "$run" --points 256:2000,64:640,1:24 --warmup 256:300 \
               -- "${engine[@]}" --quantization fp8 --log-kernel-compiles ;;
  *) echo "unknown run: $run" >&2; exit 2 ;;
esac
nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv > "$out/$run.nvidia-smi.csv" || true
