#!/usr/bin/env bash
# Data preparation benchmark (issue 28), as the issue measured it: `jtune train` of the demo's tiny Llama (made by
# `jtune init-model --arch llama --preset tiny`, GPT-2 tokenizer) for 1 step, no evaluation, on an instruction CSV of
# ROWS rows (prompt and response of 5-60 words each, a fixed seed), max_seq_length 128. Each size runs twice with an
# empty data.cache_dir: "first" reads, cleans, tokenizes and writes the tokenized-data cache, then trains one step;
# "cached" maps the cache and trains one step. Per run: wall time, peak RSS (/usr/bin/time -v: maximum resident set
# size, file-backed mapped pages included), the preparation's own time, rows/s and tokens/s (its last progress line),
# and the load before and after.
#
#   bench/data-prep.sh                     # 1M and 5M rows (the issue's targets: 1M first <= 90 s, cached <= 5 s,
#                                          # peak RSS <= 1.5 GB for 1M and 5M)
#   bench/data-prep.sh 100000              # any sizes
#
# The CSVs (337 MB and 1.7 GB) are generated once under WORKDIR (default bench/target/data-prep; DATA_PREP_WORKDIR
# overrides) and kept for later runs. JTUNE may name another launcher (default ./jtune, which builds target/jtune.jar
# when it is stale).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${DATA_PREP_WORKDIR:-$here/bench/target/data-prep}"
jtune=${JTUNE:-"$here/jtune"}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 5000000)
mkdir -p "$work"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

model="$work/base-model"
if [ ! -f "$model/config.json" ]; then
  $jtune init-model --arch llama --preset tiny --tokenizer "$here/configs/tokenizers/gpt2" --out "$model" >&2
fi

for rows in "${sizes[@]}"; do
  csv="$work/instruction-$rows.csv"
  if [ ! -f "$csv" ]; then
    echo "generating $csv ..." >&2
    python3 - "$rows" "$csv" <<'PY'
import os, random, sys
rows, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(28)
words = ("data model train loss token batch learning rate value test split answer question file row column "
         "memory cache time fast slow large small first second result number graph table label mask chat "
         "turn system user assistant parquet arrow json line text word weight seed epoch step").split()
with open(path + ".part", "w") as f:
    f.write("prompt,response\n")
    for i in range(rows):
        p = " ".join(rng.choices(words, k=rng.randint(5, 60)))
        r = " ".join(rng.choices(words, k=rng.randint(5, 60)))
        f.write(f"{p} {i}?,{r}.\n")
os.rename(path + ".part", path)   # a generation cut short is not taken for the file
PY
  fi
  cache="$work/cache-$rows"
  rm -rf "$cache"
  exp="$work/exp-$rows.yaml"
  cat > "$exp" <<YAML
model:
  path: $model
data:
  train_file: $csv
  format: instruction
  max_seq_length: 128
  validation_split: 0
  cache_dir: $cache
training:
  output_dir: $work/run-$rows
  max_steps: 1
  per_device_train_batch_size: 8
  logging_steps: 1
  save_steps: 0
  precision: fp32
  device: cpu
YAML
  echo "rows=$rows csv_bytes=$(stat -c %s "$csv") commit=$(git -C "$here" rev-parse --short HEAD) nproc=$(nproc)"
  for run in first cached; do
    echo "$run: load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    log="$work/$run-$rows.log"
    rm -rf "$work/run-$rows"
    /usr/bin/time -v -o "$log.time" $jtune train "$exp" > "$log" 2>&1 || { tail -20 "$log"; exit 1; }
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log.time")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log.time")
    cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$log.time")
    echo "$run: wall=$wall cpu_s=$cpu peak_rss_kib=$rss ($(echo "scale=2; $rss/1048576" | bc) GiB)"
    grep -E "^data: (prepared|mapped|tokenized data cached|[0-9,]+ train)" "$log" | sed "s/^/$run: /" || true
    echo "$run: load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
