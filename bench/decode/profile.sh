#!/usr/bin/env bash
# Where a decode step's time goes, by op: runs `jtune bench --generate` under Java Flight Recorder and counts the
# samples of each thread by the method on top of its stack (a native call such as CpuKernelNative.matvec,
# Tensor.add or torch.scaled_dot_product_attention is the op; Java methods are jtune's own work or waiting).
#
#   bench/decode/profile.sh MODEL_DIR [BATCH] [NEW_TOKENS]      (defaults: 1, 64)
#
# The recording also holds the model's load and the prompts (a few percent of a 64-token run). Prints, for the caller
# thread ("main") and the decode workers ("jtune-linear-*"), the top methods with their share of that thread's samples.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
model="${1:?model directory}"
batch="${2:-1}"
new="${3:-64}"
out="$(mktemp -d)"
if [ -z "${JTUNE_CP:-}" ]; then
  bash "$here/build.sh"
  JTUNE_CP="$repo/target/classes:$(cat "$repo/target/decode-bench.cp")"
fi
java -Xmx4g -XX:StartFlightRecording=filename="$out/decode.jfr",settings=profile -cp "$JTUNE_CP" dev.jtune.cli.Main bench \
    --generate --model "$model" --batch "$batch" --new-tokens "$new" --prompt-tokens 16 >&2
jfr print --events jdk.NativeMethodSample,jdk.ExecutionSample "$out/decode.jfr" > "$out/samples.txt"
/usr/bin/python3 - "$out/samples.txt" <<'PY'
import collections, re, sys
counts = collections.defaultdict(collections.Counter)
thread = top = None
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("jdk.NativeMethodSample") or line.startswith("jdk.ExecutionSample"):
        thread = top = None
    elif line.startswith("sampledThread = "):
        m = re.search(r'"([^"]+)"', line)
        thread = m.group(1) if m else line
    elif top is None and line.startswith("stackTrace = ["):
        top = ""
    elif top == "" and line and not line.startswith("stackTrace"):
        top = re.sub(r"\s+line:.*", "", line)
        group = "main" if thread == "main" else "jtune-linear-*" if thread and thread.startswith("jtune-linear") else None
        if group:
            counts[group][top] += 1
for group in ("main", "jtune-linear-*"):
    c = counts[group]
    total = sum(c.values())
    if not total:
        continue
    print(f"{group}: {total} samples")
    for method, n in c.most_common(15):
        print(f"  {100.0 * n / total:5.1f}%  {method}")
PY
