#!/usr/bin/env bash
# Measures the step peak (jtune bench --json, memory.step_peak_bytes) of the plan-accuracy configurations, one JSON per
# configuration under $1 (default bench/plan/results). Each run is short (--steps 2 --warmup 1): memory is what counts.
# Usage: bench/plan/measure.sh [OUT_DIR] [JAR]; then bench/plan/compare.sh OUT_DIR prints predicted against measured.
set -u
out="${1:-bench/plan/results}"
jar="${2:-target/jtune.jar}"
mkdir -p "$out"
run() {   # name, bench flags...
  local name="$1"; shift
  if [ -s "$out/$name.json" ]; then return; fi
  echo "$(date -u +%H:%M:%S) $name: $*" >&2
  java -jar "$jar" bench "$@" --steps 2 --warmup 1 --gemm-size 64 --json > "$out/$name.json.tmp" 2> "$out/$name.err" \
    && mv "$out/$name.json.tmp" "$out/$name.json"
}
for prec in fp32 bf16; do
  for seq in 128 512; do
    run "tiny-full-$prec-$seq" --shape tiny --precision "$prec" --seq-len "$seq" --micro-batch 8
    run "tiny-lora-$prec-$seq" --shape tiny --precision "$prec" --seq-len "$seq" --micro-batch 8 --lora-r 8
  done
done
run gpt2-124m-full-fp32-512 --shape gpt2-124m --precision fp32 --seq-len 512 --micro-batch 1
run gpt2-124m-lora-bf16-512 --shape gpt2-124m --precision bf16 --seq-len 512 --micro-batch 1 --lora-r 16
run gpt2-124m-lora-fp32-1024 --shape gpt2-124m --precision fp32 --seq-len 1024 --micro-batch 1 --lora-r 16
run qwen2.5-0.5b-lora-bf16-256 --shape qwen2.5-0.5b --precision bf16 --seq-len 256 --micro-batch 1 --lora-r 16
run qwen2.5-0.5b-lora-bf16-512 --shape qwen2.5-0.5b --precision bf16 --seq-len 512 --micro-batch 1 --lora-r 16
run gpt2-124m-full-bf16-1024 --shape gpt2-124m --precision bf16 --seq-len 1024 --micro-batch 1
# activation checkpointing on: the saved block inputs plus one block's recompute
run gpt2-124m-full-fp32-1024-ckpt --shape gpt2-124m --precision fp32 --seq-len 1024 --micro-batch 1 --gradient-checkpointing
run qwen2.5-0.5b-lora-bf16-512-ckpt --shape qwen2.5-0.5b --precision bf16 --seq-len 512 --micro-batch 1 --lora-r 16 --gradient-checkpointing
