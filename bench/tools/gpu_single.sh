#!/usr/bin/env bash
# Measured runs on one GPU with room for Mixtral-8x7B in bf16 (an H200: 87 GiB of weights at TP=1).
# Each run fits one 10-minute slot.
#
#   bash bench/tools/gpu_single.sh RUN OUT  RUN: quant-memory | quant-throughput | lora | load-agreement
#
# quant-memory     our server on Mixtral-8x7B's config with dummy weights, TP=1, once per checkpoint
#                  shape: AWQ, GPTQ and W4A16 4-bit (bench/models/mixtral-8x7b-{awq,gptq,w4a16}: the real config
#                  plus the quantization_config those checkpoints ship, or that `mixtral-serve quantize
#                  --scheme w4a16` writes (compressed-tensors), no --quantization flag: vLLM
#                  reads the method from the checkpoint, as it would from a downloaded one), then the
#                  bf16 shape with --quantization fp8 (SHAPES="w4a16 ..." picks others). Each start ends with one chat request; the
#                  weights' memory is vLLM's "Model loading took" line (OUT/quant-memory.json).
#                  RANK_OF_TP=2: the same on the shapes one GPU holds at TP=2
#                  (bench/studies/rank_shape/rank_shape.py), for want of a machine with two GPUs, plus
#                  the bf16 shape itself, whose TP=2 run on two GPUs was measured (43.51 GiB per GPU):
#                  the check on the method.
# quant-throughput our server, TP=1, our GPU defaults (CUDA graphs, 4 front ends), on each of SHAPES
#                  (awq, gptq, w4a16, fp8 or bf16, the reference; default "awq"; one shape fits a 10-minute
#                  slot), then `vllm bench serve` at the load-agreement run's loads (POINTS,
#                  "c:n,..."; SERVER_FLAGS adds server flags, TAG names the run in its label): bench/tools/serve_bench.py run, OUT/ours-SHAPE-tp1.json and the
#                  clients' JSON; bench/studies/quant_throughput/quant_throughput.py OUT tabulates them.
# lora             the GPU tests (tests/gpu): LoRA through the server against PEFT's merged model,
#                  run-time adapter load/unload, no kernel compiles while serving adapters,
#                  bitsandbytes 4-bit on the tiny Mistral-7B (dense; refused on Mixtral), LoRA on the
#                  tiny Mixtral quantized by `mixtral-serve quantize --scheme w4a16`.
# load-agreement   one server (ours, TP=1, bf16, our GPU defaults), then, for each load, vLLM's
#                  `vllm bench serve` and our `mixtral-load` on the same load
#                  (bench/tools/load_vs_vllm.py); POINTS="c:n ..." and ROUNDS (alternations per point)
#                  override the defaults.
set -euo pipefail
run=$1
out=$2
mkdir -p "$out"
started=$SECONDS
left() { echo $((${DEADLINE:-560} - (SECONDS - started))); }
dummy=(--load-format dummy --tensor-parallel-size 1 --max-model-len 4096 --served-model-name mixtral-8x7b)
# A shape's config folder and flags: awq, gptq and w4a16 are checkpoint shapes that name their own method,
# fp8 the bf16 shape quantized while loading.
shape_model() { if [ "$1" = fp8 ] || [ "$1" = bf16 ]; then echo bench/models/mixtral-8x7b; else echo "bench/models/mixtral-8x7b-$1"; fi; }
shape_flags() { if [ "$1" = fp8 ]; then echo --quantization fp8; fi; }

case $run in
  quant-memory)
    shapes=${SHAPES:-awq gptq fp8}; tp=tp1
    if [ -n "${RANK_OF_TP:-}" ]; then shapes="bf16 awq gptq fp8"; tp=tp${RANK_OF_TP}rank; fi
    for shape in $shapes; do
      if [ "$(left)" -lt 120 ]; then echo "skipping $shape: $(left) s left" | tee -a "$out/skipped.txt"; continue; fi
      model=$(shape_model "$shape"); read -r -a extra <<< "$(shape_flags "$shape")"
      if [ -n "${RANK_OF_TP:-}" ]; then
        model=$(python bench/studies/rank_shape/rank_shape.py "$model" "$RANK_OF_TP" "$(mktemp -d)")
      fi
      python bench/tools/serve_bench.py run --server ours --label "ours-$shape-$tp" --out "$out" \
        --prepare-dummy "$model" --points none --warmup none --deadline "$(left)" \
        -- "${dummy[@]}" --enforce-eager --api-server-count 1 "${extra[@]}" || true
    done
    python bench/studies/quant_memory/quant_memory.py "$out" > "$out/quant-memory.json" || true
    cat "$out/quant-memory.json"
    ;;
  quant-throughput)
    for shape in ${SHAPES:-awq}; do
      if [ "$(left)" -lt "${NEED:-300}" ]; then echo "skipping $shape: $(left) s left" | tee -a "$out/skipped.txt"; continue; fi
      read -r -a extra <<< "$(shape_flags "$shape") ${SERVER_FLAGS:-}"
      python bench/tools/serve_bench.py run --server ours --label "ours-$shape${TAG:+-$TAG}-tp1" --out "$out" \
        --prepare-dummy "$(shape_model "$shape")" --points "${POINTS:-256:768,64:256,16:96,1:8}" \
        --warmup "${WARMUP:-64:64}" --deadline "$(left)" -- "${dummy[@]}" "${extra[@]}" || true
    done
    ;;
  lora)
    # --basetemp under OUT keeps the servers' logs (the tests' tmp_path) with the results; -s the
    # tests' own figures. Each test file on its own, so one that hangs cannot hide the other's result.
    # The generated checkpoints land there too: leave out *.safetensors when copying OUT away.
    # A test that timed out leaves its server running: stopped before the next file starts.
    for file in tests/gpu/test_lora_merge.py tests/gpu/test_lora_warmup.py tests/gpu/test_bitsandbytes.py tests/gpu/test_w4a16_lora.py; do
      name=$(basename "$file" .py)
      timeout "${TEST_TIMEOUT:-240}" python -m pytest "$file" -v -s -rA -p no:cacheprovider \
        --basetemp "$out/$name" 2>&1 | tee "$out/$name.log" || true
      pkill -INT -f "python -m server" && sleep 10 && pkill -KILL -f "python -m server" || true
    done
    ;;
  load-agreement)
    # SERVER_ARGS replaces the model and engine flags (a CPU dry run: SERVER_ARGS="--max-model-len 1024").
    if [ -n "${SERVER_ARGS:-}" ]; then read -r -a server_args <<< "$SERVER_ARGS"; else
      model=$(python -c 'import sys, tempfile; from pathlib import Path; sys.path.insert(0, ".")
from server.engine.tiny import prepare_dummy_checkpoint
print(prepare_dummy_checkpoint(Path("bench/models/mixtral-8x7b/config.json"), Path(tempfile.mkdtemp())))')
      server_args=(--model "$model" "${dummy[@]}")
    fi
    setsid python -m server "${server_args[@]}" --port 8000 > "$out/server.log" 2>&1 &
    server=$!
    trap 'kill -INT -- -$server 2>/dev/null; sleep 15; kill -KILL -- -$server 2>/dev/null || true' EXIT
    until curl -sf http://127.0.0.1:8000/health > /dev/null; do
      kill -0 $server || { tail -50 "$out/server.log"; exit 1; }
      sleep 1
    done
    echo "ready after $((SECONDS - started)) s" | tee "$out/ready.txt"
    # The first requests a server sees are slower; neither client should get them.
    PYTHONPATH=. python -m clients.load --base-url http://127.0.0.1:8000 --concurrency 64 --num-prompts 64 \
      --input-len 512 --output-len 16 --ignore-eos --out "$out/warmup" --no-plots --no-progress > /dev/null
    for point in ${POINTS:-256:768 64:256 16:96 1:8}; do
      c=${point%:*}; n=${point#*:}
      if [ "$(left)" -lt "${NEED:-90}" ]; then echo "skipping c=$c: $(left) s left" | tee -a "$out/skipped.txt"; continue; fi
      python bench/tools/load_vs_vllm.py --url http://127.0.0.1:8000 --out "$out/load_c$c.json" \
        --concurrency "$c" --num-prompts "$n" --workers 4 --seed "$c" --rounds "${ROUNDS:-1}" 2> "$out/load_c$c.log"
    done
    ;;
  *) echo "unknown run: $run" >&2; exit 2 ;;
esac
nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv > "$out/$run.nvidia-smi.csv" || true
