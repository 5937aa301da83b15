#!/usr/bin/env python3
"""Plan accuracy: for each `jtune bench --json` result in a directory (bench/plan/measure.sh writes them), run
`jtune plan` with the same shape and settings and print predicted against measured step peak (memory.step_peak_bytes).

Usage: bench/plan/compare.py RESULTS_DIR [JTUNE_COMMAND...]   (default command: java -jar target/jtune.jar)
"""
import json, pathlib, subprocess, sys

out = pathlib.Path(sys.argv[1])
cmd = sys.argv[2:] or ["java", "-jar", "target/jtune.jar"]
rows = []
for f in sorted(out.glob("*.json")):
    j = json.loads(f.read_text())
    c, m = j["config"], j["memory"]
    args = ["plan", "--shape", c["shape"], "--precision", c["precision"], "--seq-len", str(c["seq_len"]),
            "--micro-batch", str(c["micro_batch"]), "--memory", "24GiB", "--json"]
    if c.get("gradient_checkpointing"):
        args += ["--gradient-checkpointing"]
    if c["mode"] == "lora":
        args += ["--lora-r", str(c["lora_r"])]
    p = json.loads(subprocess.run(cmd + args, check=True, capture_output=True, text=True).stdout)
    pred, meas = p["total_bytes"], m["step_peak_bytes"]
    act = p["breakdown"]["activations"]["bytes"] + p["breakdown"]["loss"]["bytes"]
    rows.append((f.stem + (" (ckpt)" if c.get("gradient_checkpointing") else ""), c["mode"], c["precision"], c["seq_len"], c["micro_batch"], pred, meas, (pred - meas) / meas, act, m["step_start_bytes"]))
print("| configuration | mode | precision | seq | batch | predicted | measured step peak | error | predicted activations + loss | RSS at step start |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5] / 2**20:.0f} MiB | {r[6] / 2**20:.0f} MiB | {100 * r[7]:+.1f}% | {r[8] / 2**20:.0f} MiB | {r[9] / 2**20:.0f} MiB |")
worst = max(abs(r[7]) for r in rows) if rows else float("nan")
print(f"\n{len(rows)} configurations, worst error {100 * worst:.1f}%")
