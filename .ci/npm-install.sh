#!/usr/bin/env bash
# Installs the npm test projects under src/test/node/ (GGUF export checks in real llama.cpp: node-llama-cpp's
# linux-x64 prebuilt binary and @huggingface/gguf). Idempotent and fast when nothing changed: a folder whose
# node_modules was installed from the same package-lock.json (its sha256 is kept in node_modules) is skipped.
# Each folder's .npmrc omits optional dependencies (the other platforms' binaries) and install scripts
# (node-llama-cpp's postinstall would try to download or build llama.cpp; the prebuilt is loaded as shipped).
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in src/test/node/*/; do
  dir="${dir%/}"
  [ -f "$dir/package-lock.json" ] || continue
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$dir/node_modules/.jtune-lock-sha256" ] && [ "$(cat "$dir/node_modules/.jtune-lock-sha256")" = "$want" ]; then
    echo "npm: $dir is up to date"
    continue
  fi
  echo "npm: installing $dir (npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund)
  echo "$want" > "$dir/node_modules/.jtune-lock-sha256"
done
