#!/usr/bin/env python3
"""Table for bench-suite/ab.sh: per configuration, the median over rounds of each side's
ms/seq and new / base (< 1: the new tree is faster). Reads `report --json` lines tagged
with "side": "base" | "new" on stdin; other lines are ignored."""
import json
import math
import statistics
import sys

base_rev = sys.argv[1] if len(sys.argv) > 1 else "base"
runs = {}
for line in sys.stdin:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if not isinstance(r, dict) or "side" not in r:
        continue
    key = (r["isa"], r["dtype"], r["cell"], r["batch"], r["hidden"], r["input"], r["steps"], r["threads"])
    runs.setdefault(key, {}).setdefault(r["side"], []).append(r["s_per_seq"] * 1e3)

print(f"| isa | dtype | cell | B,H,I,T | thr | base {base_rev} ms | new ms | new ÷ base |")
print("|---|---|---|---|---:|---:|---:|---:|")
logs = []
for key in sorted(runs):
    isa, dtype, cell, b, h, i, t, thr = key
    sides = runs[key]
    if "base" not in sides or "new" not in sides:
        continue
    mb, mn = statistics.median(sides["base"]), statistics.median(sides["new"])
    logs.append(math.log(mn / mb))
    print(f"| {isa} | {dtype} | {cell} | {b},{h},{i},{t} | {thr} | {mb:.4g} | {mn:.4g} | {mn / mb:.3f} |")
if logs:
    g = math.exp(sum(logs) / len(logs))
    print(f"\ngeometric mean of new ÷ base over {len(logs)} configurations: {g:.3f} "
          f"(min {math.exp(min(logs)):.3f}, max {math.exp(max(logs)):.3f})")
