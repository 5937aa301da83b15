#!/usr/bin/env bash
# Compiles the checkout (CPU kernels included, CUDA kernels skipped) and writes its dependency class path to
# target/decode-bench.cp: what the decode benchmarks (run.sh, profile.sh) run against.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo" && mvn -B -ntp -q -o -DskipTests -Djtune.kernels=skip compile dependency:build-classpath -Dmdep.outputFile=target/decode-bench.cp >&2
