#!/usr/bin/env bash
# Greedy decode speed of jtune beside llama.cpp on the same weights, alternating the two tools in one run (the box is
# shared: only ratios from one run mean anything; the load average is printed with every result).
#
#   bench/decode/run.sh [WORK_DIR] [ROUNDS]       (defaults: /tmp/jtune-decode-bench, 3)
#
# WORK_DIR/hf/ (a Hugging Face directory) and WORK_DIR/model-f32.gguf are made by make_model.py when missing (the
# qwen2.5-0.5b decoder with the GPT-2 vocabulary, 448M parameters); GGUF=path uses another GGUF of the same weights
# (e.g. from `jtune export --format gguf --type f32` once it exists). Each round runs `jtune bench --generate` and then
# bench/peer/llamacpp/decode.mjs, batch 1 and 8 (BATCHES=...), NEW tokens (64) after a PROMPT-token prompt (16),
# THREADS llama.cpp threads (2); jtune uses every core (JTUNE_NUM_THREADS); REPEATS timed runs per batch size in
# each tool, the best reported (1). Both print the greedy ids of row 0, and the
# summary checks they are equal, and that each tool's row 0 at every batch size equals its own at the first batch size
# (row 0's prompt is the same whatever the batch: a difference there is the tool's batching, not the weights).
# Results: WORK_DIR/results/round-N-{jtune,llamacpp}.json, a summary on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${1:-/tmp/jtune-decode-bench}"
rounds="${2:-3}"
batches="${BATCHES:-1,8}"
new="${NEW:-64}"
prompt="${PROMPT:-16}"
threads="${THREADS:-2}"
repeats="${REPEATS:-1}"
mkdir -p "$work/results"
if [ ! -f "$work/hf/model.safetensors" ] || [ ! -f "$work/model-f32.gguf" ]; then
  /usr/bin/python3 "$here/make_model.py" "$work"
fi
gguf="${GGUF:-$work/model-f32.gguf}"
if [ ! -d "$repo/bench/peer/llamacpp/node_modules/node-llama-cpp" ]; then
  (cd "$repo/bench/peer/llamacpp" && npm ci --no-audit --no-fund >&2)   # .npmrc: no optional packages, no install scripts
fi
if [ -z "${JTUNE_CP:-}" ]; then
  bash "$here/build.sh"
  rm -rf "$work/classes" && cp -r "$repo/target/classes" "$work/classes"   # a snapshot: rebuilding the checkout mid-run must not change it
  JTUNE_CP="$work/classes:$(cat "$repo/target/decode-bench.cp")"
fi
for r in $(seq 1 "$rounds"); do
  echo "round $r: jtune (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  java -Xmx4g -cp "$JTUNE_CP" dev.jtune.cli.Main bench --generate --model "$work/hf" --batch "$batches" \
      --new-tokens "$new" --prompt-tokens "$prompt" --repeats "$repeats" --json > "$work/results/round-$r-jtune.json"
  echo "round $r: llama.cpp (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  (cd "$repo/bench/peer/llamacpp" && node decode.mjs --gguf "$gguf" --batch "$batches" --new-tokens "$new" \
      --prompt-tokens "$prompt" --threads "$threads" --repeats "$repeats") > "$work/results/round-$r-llamacpp.json"
done
/usr/bin/python3 - "$work/results" "$rounds" <<'PY'
import json, sys
d, rounds = sys.argv[1], int(sys.argv[2])
print(f"{'round':>5} {'batch':>5} {'jtune tok/s':>12} {'llama.cpp tok/s':>16} {'ratio':>6} {'jtune GB/s':>10} {'llama GB/s':>10}  same greedy ids  row 0 as at the first batch (jtune, llama.cpp)  load (jtune | llama.cpp)")
for r in range(1, rounds + 1):
    j = json.load(open(f"{d}/round-{r}-jtune.json"))
    l = json.load(open(f"{d}/round-{r}-llamacpp.json"))
    for jb, lb in zip(j["batches"], l["batches"]):
        same = jb["row0"] == lb["row0"]
        own = (jb["row0"] == j["batches"][0]["row0"], lb["row0"] == l["batches"][0]["row0"])
        print(f"{r:>5} {jb['batch']:>5} {jb['tokensPerSecond']:>12.2f} {lb['tokensPerSecond']:>16.2f} "
              f"{jb['tokensPerSecond'] / lb['tokensPerSecond']:>6.2f} {jb['weightGBPerSecond']:>10.1f} {lb['weightGBPerSecond']:>10.1f}  "
              f"{str(same):>15}  {str(own[0]):>5}, {str(own[1]):<5}  {j['load']} | {l['load']}")
    if len(j["batches"]) > 1:
        print(f"      jtune batch {j['batches'][-1]['batch']} / batch {j['batches'][0]['batch']}: "
              f"{j['batches'][-1]['tokensPerSecond'] / j['batches'][0]['tokensPerSecond']:.2f}x tokens/s")
PY
