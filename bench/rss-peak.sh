#!/usr/bin/env bash
# Runs a command and reports the peak of its anonymous RSS (RssAnon, sampled every 50 ms from /proc/PID/status),
# for comparisons of step memory between two runs that load the same thing (e.g. bench with and without
# --gradient-checkpointing). Usage: bench/rss-peak.sh OUTPUT_FILE command args...
set -euo pipefail
out="$1"; shift
"$@" > "$out" &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
  kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  [ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
  sleep 0.05
done
wait "$pid"
echo "peak_rss_anon_kib=$peak"
