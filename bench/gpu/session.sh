#!/usr/bin/env bash
# The GPU checks and benchmarks of one lease, a step per device call (each fits the 10-minute limit of a call).
# Here first: mvn -B -DskipTests package && bash bench/gpu/build-jmh.sh && bash ../shared/gpu/stage.sh
# There, after carrying .gpu/p00, p01, p02… and unpacking (../shared/gpu/README.md), from the repository root:
#   bash bench/gpu/session.sh check                  # versions, devices, a 3-step CUDA bench of the tiny shape
#   bash bench/gpu/session.sh tests                  # every @Tag("gpu") test (kernels, CUDA parity, training curves)
#   bash bench/gpu/session.sh reference              # transformers' logits for the tiny models, then ReferenceLogitsTest
#   bash bench/gpu/session.sh kernels                # KernelBenchmark and AdamWBenchmark (carry bench/target/jmh)
#   bash bench/gpu/session.sh bench llama3.2-1b 4096 # jtune bench and the HF + PEFT peer, LoRA r=16 and full
#   bash bench/gpu/session.sh bench llama3-8b 4096
#   bash bench/gpu/session.sh decode qwen2.5-0.5b     # issue 31: CudaGraphDecodeGpuTest, then decode tokens/s eager vs
#                                                    # CUDA graphs (JTUNE_CUDA_GRAPHS=1), fp32 and batch 1, same call
#   bash bench/gpu/session.sh nccl llama3.2-1b 1024  # issue 16: NCCL at world size 1 through the whole data-parallel path
#                                                    # (a training test) and bench's overhead against no process group
# Everything lands in $OUT/<step>/ (the device tool brings $OUT back); copy it into bench/results/ and write the
# numbers into bench/RESULTS.md in the same session.
set -uo pipefail
step=${1:?usage: session.sh check|tests|reference|kernels|bench SHAPE [SEQ]|decode [SHAPE]|nccl [SHAPE] [SEQ]}
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091
source .gpu/rt/env.sh
out=${OUT:-/tmp/jtune-out}/$step${2:+-$2}
mkdir -p "$out"
junit() { java org.junit.platform.console.ConsoleLauncher execute --class-path "$CLASSPATH" --details=tree --disable-banner "$@"; }
case $step in
  check)
    java -version 2>&1; nvidia-smi -L
    java dev.jtune.cli.Main env --json | tee "$out/env.json"   # which LibTorch, CUDA, cuDNN, NCCL loaded, and from where
    python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'peft', peft.__version__)"
    java dev.jtune.cli.Main bench --shape tiny --device cuda --seq-len 128 --steps 3 --warmup 1 | tee "$out/tiny.txt" ;;
  tests)
    # every @Tag("gpu") class in its own JVM (a native crash takes one class down, not the rest), and a skip is a
    # failure: JTUNE_REQUIRE_CUDA=1 (GpuTests) so that "all skipped" can never read as green on the GPU machine
    export JTUNE_REQUIRE_CUDA=1
    for cls in $(grep -rl '@Tag("gpu")' src/test/java | sed 's|src/test/java/||; s|\.java$||; s|/|.|g' | grep 'Test$' | sort); do
      echo "== $cls"; junit --select-class "$cls" --include-tag gpu --reports-dir "$out/$cls" 2>&1 | tee -a "$out/tests.txt"
    done ;;
  reference)
    python3 src/test/python/reference/transformers_reference.py 2>&1 | tee "$out/reference.txt"
    for f in src/test/resources/models/*/reference_logits.transformers.json; do mkdir -p "$out/$(dirname "$f")"; cp "$f" "$out/$f"; done
    junit --select-class dev.jtune.model.ReferenceLogitsTest 2>&1 | tee "$out/reference-test.txt" ;;
  kernels)
    jmh="bench/target/jmh/classes:$(ls bench/target/jmh/lib/*.jar | tr '\n' ':')"
    java -cp "$CLASSPATH:$jmh" org.openjdk.jmh.Main KernelBenchmark -f 1 -wi 3 -i 5 -rf json -rff "$out/kernels.json" 2>&1 | tee "$out/kernels.txt"
    java -cp "$CLASSPATH:$jmh" org.openjdk.jmh.Main AdamWBenchmark -p device=cuda -f 1 -wi 3 -i 5 -rf json -rff "$out/adamw.json" 2>&1 | tee "$out/adamw.txt" ;;
  bench)
    shape=${2:?bench SHAPE [SEQ]}; seq=${3:-4096}
    for r in 16 0; do
      java dev.jtune.cli.Main bench --shape "$shape" --lora-r $r --precision bf16 --seq-len "$seq" --micro-batch 1 --device cuda \
        --steps 10 --warmup 3 --json > "$out/jtune-r$r.json" 2> "$out/jtune-r$r.err"
      python3 bench/peer/hf_peft_bench.py --shape "$shape" --lora-r $r --precision bf16 --seq-len "$seq" --micro-batch 1 --device cuda \
        --steps 10 --warmup 3 --json > "$out/hf-r$r.json" 2> "$out/hf-r$r.err"
      for t in jtune hf; do
        python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[1], 'tokens/s', round(j['tokens_per_s']), 'peak GiB', round((j['memory']['peak_bytes'] or 0)/2**30, 2), 'mfu', j['mfu'])" \
          "$out/$t-r$r.json" 2>/dev/null || { echo "$t r=$r failed:"; tail -5 "$out/$t-r$r.err"; }
      done
    done ;;
  decode)
    junit --select-class dev.jtune.infer.CudaGraphDecodeGpuTest --reports-dir "$out" 2>&1 | tee "$out/graph-test.txt"
    shape=${2:-qwen2.5-0.5b}
    for graphs in 0 1 0 1; do
      JTUNE_CUDA_GRAPHS=$graphs java dev.jtune.cli.Main bench --generate --shape "$shape" --device cuda --batch 1 \
        --new-tokens 128 --repeats 3 | tee -a "$out/decode-graphs-$graphs.txt"
    done ;;
  nccl)
    # 1. jtune train --nproc-per-node 1 on cuda (a real NCCL group of one: broadcast, all-reduces, barriers) against the
    #    same training without a process group: losses and final weights within CUDA's run-to-run noise
    junit --select-method 'dev.jtune.train.DataParallelWorldOneTest#ncclWorldSizeOneEqualsTheRunWithoutAGroup' \
      --reports-dir "$out" 2>&1 | tee "$out/nccl-test.txt"
    # 2. the overhead: the same bench without a process group, then as rank 0 of 1 with NCCL (--nproc-per-node 1;
    #    that run also times the same steps without the all-reduce in its own process: tokens_per_s_alone)
    shape=${2:-llama3.2-1b}; seq=${3:-1024}
    for r in 16 0; do
      for mode in plain nccl1; do
        extra=(); [ "$mode" = nccl1 ] && extra=(--nproc-per-node 1)
        java dev.jtune.cli.Main bench --shape "$shape" --lora-r $r --precision bf16 --seq-len "$seq" --micro-batch 1 --device cuda \
          --steps 10 --warmup 3 --json "${extra[@]}" > "$out/bench-r$r-$mode.json" 2> "$out/bench-r$r-$mode.err" \
          || { echo "bench r=$r $mode failed:"; tail -5 "$out/bench-r$r-$mode.err"; }
      done
      python3 - "$out/bench-r$r-plain.json" "$out/bench-r$r-nccl1.json" "$r" <<'PY' | tee -a "$out/nccl-overhead.txt"
import json, sys
try:
    plain, one = (json.load(open(f)) for f in sys.argv[1:3])
except Exception as e:
    sys.exit(f"lora_r={sys.argv[3]}: no result ({e})")
d = one.get("distributed") or {}
p, n = plain["tokens_per_s"], one["tokens_per_s"]
print(f"lora_r={sys.argv[3]} {plain['config']['shape']} seq {plain['config']['seq_len']}: no group {p:,.0f} tokens/s; "
      f"NCCL world size 1 {n:,.0f} tokens/s: overhead {100 * (1 - n / p):.2f}% "
      f"(all-reduce {1e3 * d.get('allreduce_s_per_step', float('nan')):.2f} ms/step, "
      f"{100 * d.get('allreduce_share', float('nan')):.2f}% of the step; same process without the all-reduce "
      f"{d.get('tokens_per_s_alone', float('nan')):,.0f} tokens/s, efficiency {100 * d.get('scaling_efficiency', float('nan')):.1f}%)")
PY
    done ;;
  *) echo "unknown step '$step'" >&2; exit 2 ;;
esac
