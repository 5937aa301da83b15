#!/usr/bin/env bash
# Two builds of jtune's decode step in one JVM, alternating (see DecodeAB.java):
#   bench/decode/ab.sh MODEL_DIR CLASSES_A CLASSES_B [STEPS] [ROUNDS] [BATCHES]
# e.g. A = a snapshot of main's target/classes, B = this checkout's target/classes (build both first).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
[ -f "$repo/target/decode-bench.cp" ] || (cd "$repo" && mvn -B -ntp -q -o -DskipTests -Djtune.kernels=skip dependency:build-classpath -Dmdep.outputFile=target/decode-bench.cp >&2)
deps="$(cat "$repo/target/decode-bench.cp")"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/main" "$scratch/timer"
javac -nowarn -d "$scratch/main" "$here/DecodeAB.java"
javac -nowarn -d "$scratch/timer" -cp "$deps:$3" "$here/DecodeStepTimer.java"
java -Xmx4g -cp "$deps:$scratch/main" DecodeAB "$1" "$scratch/timer" "$2" "$3" "${4:-16}" "${5:-3}" "${6:-1,8}"
