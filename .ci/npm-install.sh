#!/usr/bin/env bash
# Installs the locked npm dependencies of the test projects that tests run (src/test/node/<name>/, package.json and
# package-lock.json committed; node_modules ignored): serve (the official openai client against `jtune serve`) and
# gguf (llama.cpp through node-llama-cpp's linux-x64 prebuilt binary, and @huggingface/gguf). data-fixtures is not
# installed: it only regenerates committed fixtures. Idempotent and fast when nothing changed: a folder whose
# node_modules was installed from the same package-lock.json (its sha256 is kept in node_modules) is skipped. A
# folder's .npmrc may omit optional dependencies and install scripts (gguf: node-llama-cpp's postinstall would try to
# download or build llama.cpp; the prebuilt is loaded as shipped).
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in src/test/node/serve src/test/node/gguf; do
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$dir/node_modules/.jtune-lock-sha256" ] && [ "$(cat "$dir/node_modules/.jtune-lock-sha256")" = "$want" ]; then
    echo "npm: $dir is up to date"
    continue
  fi
  echo "npm: installing $dir (npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$dir/node_modules/.jtune-lock-sha256"
done
