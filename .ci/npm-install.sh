#!/usr/bin/env bash
# Installs the npm test projects' locked dependencies (src/test/node/<name>/, package-lock.json committed) with
# `npm ci`. Idempotent and quick when nothing changed: a project whose node_modules matches its lock is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- jtune serve: the official OpenAI client (dev.jtune.serve.OpenAiClientTest) ---
install() {
  local dir="$1"
  # npm's own record of what node_modules holds equals the lock's packages: nothing to do
  if [ -f "$dir/node_modules/.package-lock.json" ] && (cd "$dir" && node -e '
      const want = require("./package-lock.json").packages, have = require("./node_modules/.package-lock.json").packages;
      delete want[""];
      process.exit(JSON.stringify(want) === JSON.stringify(have) ? 0 : 1)'); then
    return 0
  fi
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}
install src/test/node/serve
# --- end jtune serve ---
