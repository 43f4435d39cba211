#!/usr/bin/env bash
# vLLM's Ray backend over two stand-in hosts: a Ray head in network namespace mxs-a, a Ray worker in
# mxs-b (a veth pair between them, each with a private /dev/shm), then vLLM's OpenAI server on the head with
# pipeline parallelism 2 over Ray. Everything it starts is stopped and removed at the end.
# Usage (root): bench/studies/multihost/ray_two_hosts.sh MODEL_DIR LOG_DIR
set -uo pipefail
MODEL=$1; LOGS=$2; mkdir -p "$LOGS"
VENV=${VENV:-/work/main/.venv}
export PATH="$VENV/bin:$PATH" RAY_USAGE_STATS_ENABLED=0

on() {  # on NS CMD...: run on that host, in a mount namespace with its own /dev/shm
  local ns=$1; shift
  ip netns exec "$ns" unshare --mount --propagation private \
    sh -c 'mount -t tmpfs -o size=2g shm /dev/shm && exec "$@"' host-shell "$@"
}
cleanup() {
  for ns in mxs-a mxs-b; do
    ip netns exec "$ns" "$VENV/bin/ray" stop --force >/dev/null 2>&1
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
}
trap cleanup EXIT
cleanup
ip netns add mxs-a && ip netns add mxs-b
ip -n mxs-a link set lo up && ip -n mxs-b link set lo up
ip link add mxs-ab netns mxs-a type veth peer mxs-ba netns mxs-b
ip -n mxs-a addr add 10.200.0.1/24 dev mxs-ab && ip -n mxs-a link set mxs-ab up
ip -n mxs-b addr add 10.200.0.2/24 dev mxs-ba && ip -n mxs-b link set mxs-ba up

# The Ray head and vLLM share host A's /dev/shm (Ray's object store lives there): one shell.
HEAD_SCRIPT='
ray start --head --node-ip-address 10.200.0.1 --port 6379 --num-cpus 1 --include-dashboard false \
  --disable-usage-stats >"$LOGS/ray-head.log" 2>&1; echo "ray head: $?"
for _ in $(seq 120); do [ -e "$LOGS/worker-joined" ] && break; sleep 1; done
ray status >"$LOGS/ray-status.log" 2>&1; cat "$LOGS/ray-status.log"
start=$(date +%s)
VLLM_HOST_IP=10.200.0.1 GLOO_SOCKET_IFNAME=mxs-ab RAY_ADDRESS=10.200.0.1:6379 timeout 300 \
  python -m vllm.entrypoints.openai.api_server --model "$MODEL" --pipeline-parallel-size 2 --distributed-executor-backend ray --dtype float32 \
  --max-model-len 1024 --kv-cache-memory-bytes 268435456 --host 10.200.0.1 --port 8000 \
  >"$LOGS/vllm-serve-ray.log" 2>&1
echo "vllm serve over Ray exited with $? after $(( $(date +%s) - start )) s"
ray stop --force >/dev/null 2>&1
'
export LOGS MODEL
on mxs-a sh -c "$HEAD_SCRIPT" &
head=$!
timeout 120 sh -c 'until grep -q "Ray runtime started" "$LOGS/ray-head.log" 2>/dev/null; do sleep 1; done'
on mxs-b sh -c 'ray start --address 10.200.0.1:6379 --node-ip-address 10.200.0.2 --num-cpus 1 \
  --disable-usage-stats >"$LOGS/ray-worker.log" 2>&1; echo "ray worker: $?"; touch "$LOGS/worker-joined"' &
wait $head
grep -n -E "Error|does not support" "$LOGS/vllm-serve-ray.log" | tail -20
