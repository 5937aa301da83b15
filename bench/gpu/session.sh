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
# Everything lands in $OUT/<step>/ (the device tool brings $OUT back); copy it into bench/results/ and write the
# numbers into bench/RESULTS.md in the same session.
set -uo pipefail
step=${1:?usage: session.sh check|tests|reference|kernels|bench SHAPE [SEQ]}
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091
source .gpu/rt/env.sh
out=${OUT:-/tmp/jtune-out}/$step${2:+-$2}
mkdir -p "$out"
junit() { java org.junit.platform.console.ConsoleLauncher execute --class-path "$CLASSPATH" --details=tree --disable-banner "$@"; }
case $step in
  check)
    java -version 2>&1; nvidia-smi -L
    python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'peft', peft.__version__)"
    java dev.jtune.cli.Main bench --shape tiny --device cuda --seq-len 128 --steps 3 --warmup 1 | tee "$out/tiny.txt" ;;
  tests)
    junit --scan-class-path --include-tag gpu --reports-dir "$out" 2>&1 | tee "$out/tests.txt" ;;
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
  *) echo "unknown step '$step'" >&2; exit 2 ;;
esac
