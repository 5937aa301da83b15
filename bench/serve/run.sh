#!/usr/bin/env bash
# Loopback load test of `jtune serve` (not a unit test): a tiny Llama (init-model, GPT-2 tokenizer) served on
# 127.0.0.1, then bench/serve/load.mjs: 8 greedy requests one at a time vs at once (same answers? time ratio),
# one client vs CLIENTS clients for SECONDS each (tokens/s, TTFT p50/p99, failures, server RSS), and SIGTERM with
# CLIENTS requests in flight (none may be lost). Prints the load average beside the results.
#   bench/serve/run.sh [SECONDS=30] [CLIENTS=32] [MAX_BATCH=16]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-30}" clients="${2:-32}" batch="${3:-16}"
jtune="${JTUNE:-./jtune}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
$jtune init-model --arch llama --preset "${PRESET:-small}" --tokenizer configs/tokenizers/gpt2 --out "$work/model" --seed 1 >/dev/null
$jtune serve --model "$work/model" --served-model-name bench --port 0 --max-batch "$batch" --max-queue 128 --max-tokens 64 \
  2> "$work/serve.log" &
server=$!
for _ in $(seq 1 240); do grep -q 'listening on' "$work/serve.log" && break; sleep 0.5; done
url="$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.log")"
# the launcher script execs java: $! is the JVM
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) cores)"
node bench/serve/load.mjs "$url" bench "$server" "$seconds" "$clients" 32
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
set +e
wait "$server"
echo "server exit code after SIGTERM: $?"
