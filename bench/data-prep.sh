#!/usr/bin/env bash
# Data preparation benchmark (issue 28): generates an instruction CSV of ROWS rows (prompt and response of 5-60
# words each, a fixed seed), then runs `jtune data` on it twice with an empty tokenized-data cache: the first run
# prepares (read, clean, split, tokenize, mask) and writes the cache, the second reads it. Prints wall time and
# peak anonymous RSS (bench/rss-peak.sh) of each, and the load. Usage: bench/data-prep.sh ROWS [WORKDIR]
#   bench/data-prep.sh 1000000      # the 1M-row file of the issue (337 MB)
#   bench/data-prep.sh 5000000
# JTUNE may name another launcher (a java command line), e.g. to run a build outside target/.
set -euo pipefail
rows="${1:?usage: bench/data-prep.sh ROWS [WORKDIR]}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${2:-$here/bench/target/data-prep}"
mkdir -p "$work"
csv="$work/instruction-$rows.csv"
if [ ! -f "$csv" ]; then
  echo "generating $csv ..." >&2
  python3 - "$rows" "$csv" <<'PY'
import random, sys
rows, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(28)
words = ("data model train loss token batch learning rate value test split answer question file row column "
         "memory cache time fast slow large small first second result number graph table label mask chat "
         "turn system user assistant parquet arrow json line text word weight seed epoch step").split()
with open(path, "w") as f:
    f.write("prompt,response\n")
    for i in range(rows):
        p = " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))
        r = " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))
        f.write(f"{p} {i}?,{r}.\n")
PY
fi
cache="$work/cache-$rows"
rm -rf "$cache"
exp="$work/exp-$rows.yaml"
cat > "$exp" <<YAML
model:
  path: $here/src/test/resources/models/llama-tiny
  tokenizer: $here/configs/tokenizers/gpt2
data:
  train_file: $csv
  format: instruction
  max_seq_length: 128
  cache_dir: $cache
training:
  output_dir: $work/run-$rows
YAML
echo "rows=$rows csv_bytes=$(stat -c %s "$csv") commit=$(git -C "$here" rev-parse --short HEAD) nproc=$(nproc)"
for run in first cached; do
  echo "load before $run: $(cut -d' ' -f1-3 /proc/loadavg)"
  start=$(date +%s.%N)
  "$here/bench/rss-peak.sh" "$work/$run-$rows.log" ${JTUNE:-"$here/jtune"} data "$exp" | sed "s/^/$run: /"
  end=$(date +%s.%N)
  echo "$run: wall_s=$(echo "$end - $start" | bc)"
  grep -E "^data: " "$work/$run-$rows.log" | sed "s/^/$run: /"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
