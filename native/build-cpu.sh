#!/usr/bin/env bash
# Builds libjtunecpu.so (kernels/cpu/*.cpp + native/cpu/*.cpp) with the host C++ compiler: the CPU kernels, which
# need no CUDA. Called by Maven (pom.xml, profile "kernels", phase compile); runs by hand too:
#   native/build-cpu.sh OUT_DIR OBJ_DIR JAVA_HOME
# Environment / Maven property jtune.cpu.kernels:
#   JTUNE_CPU_KERNELS  auto (default: build on linux-x86_64 when a C++ compiler is found, else say so and skip),
#                      skip, require
#   CXX  the compiler (default: c++, g++, clang++ on PATH)
# The library is compiled for baseline x86-64 so that it loads on any such CPU; the kernels carry AVX2 and AVX-512
# variants (target attributes) and pick one at load.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?out dir}; OBJ=${2:?obj dir}; JHOME=${3:-${JAVA_HOME:-}}
MODE=${JTUNE_CPU_KERNELS:-auto}
LIB=$OUT/libjtunecpu.so

if [ "$MODE" = skip ]; then echo "[jtune-cpu-kernels] skipped (jtune.cpu.kernels=skip)"; exit 0; fi
if [ -z "${CXX:-}" ]; then
    for c in c++ g++ clang++; do command -v "$c" >/dev/null && { CXX=$c; break; }; done
fi
if [ -z "${CXX:-}" ] || [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
    msg="[jtune-cpu-kernels] no C++ compiler or not linux-x86_64: CPU kernels NOT built (LibTorch's ops are used instead)"
    if [ "$MODE" = require ]; then echo "$msg" >&2; exit 1; fi
    echo "$msg"; exit 0
fi
[ -f "$JHOME/include/jni.h" ] || { echo "[jtune-cpu-kernels] no jni.h under $JHOME/include" >&2; exit 1; }

SOURCES=(kernels/cpu/*.cpp native/cpu/*.cpp)
STAMP="$OBJ/build-cpu.stamp"
WANT="cxx=$("$CXX" --version | head -1)"
if [ -f "$LIB" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
   && [ -z "$(find kernels/cpu native/cpu native/include/jtune_cpu.h native/build-cpu.sh -newer "$LIB" -type f)" ]; then
    echo "[jtune-cpu-kernels] up to date: $LIB"; exit 0
fi
mkdir -p "$OUT" "$OBJ"
start=$(date +%s)
# -ffp-contract=off: a * b + c stays two roundings outside the explicit FMA intrinsics, as written
"$CXX" -O3 -std=c++17 -fPIC -shared -Wall -Wextra -ffp-contract=off -fno-exceptions -fno-rtti \
    -Inative/include -Ikernels/cpu -I"$JHOME/include" -I"$JHOME/include/linux" \
    -static-libstdc++ -static-libgcc -Wl,-z,defs -o "$LIB.tmp" "${SOURCES[@]}"
mv "$LIB.tmp" "$LIB"
echo "$WANT" > "$STAMP"
echo "[jtune-cpu-kernels] built $LIB with $CXX ($(du -k "$LIB" | cut -f1) KiB) in $(( $(date +%s) - start )) s"
