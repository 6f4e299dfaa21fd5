#!/usr/bin/env python3
"""Join rnn-kernels' `report --json` output with peers.py output into markdown tables.

    python3 bench-suite/peers/join.py ours.jsonl bench-suite/results/*.jsonl

Reads any number of JSON-lines files ("-" = stdin) whose objects have the keys
impl, isa, dtype, cell, batch, hidden, input, steps, threads, s_per_seq, gflops.
Lines that are not JSON objects are ignored.  If the same (impl, isa, dtype, cell,
shape, threads) appears more than once, the fastest measurement is kept.

Prints one markdown table per (dtype, threads): cell, (B,H,I,T), our ms/seq (one
column, or one per ISA if ours was run with several), torch ms, onnxruntime ms
(and any other impl found), the best peer, and speedup = best peer time / our
time (> 1: rnn-kernels is faster; our best ISA is used).  A geometric-mean
speedup line follows each table, and a summary per thread count ends the output.
Missing entries print "-".  Half-precision rows (dtype f16 / bf16, ours and
torch's) get their own tables, compared like for like (same dtype).

Rows with impl "bound" (from `bound --all --json`) are not a peer: they add a
"bound ms" column and "ceiling = best peer ÷ bound", the largest speedup this
machine allows, with its geometric mean under each table.

With --half-vs-f32, a further section per thread count compares our f16/bf16
rows with the peers' *f32* rows of the same configuration (ONNX Runtime has no
half-precision RNN kernels, so that is the only comparison it allows).  It is
labelled as a mixed-precision comparison: the peers there run in f32, we run
with half weights, inputs and outputs (f32 arithmetic).  It also shows our own
half ÷ f32 speedup when our f32 rows are present.

Records carry an optional "pass" ("forward" when absent; "train" from
`report --pass train` and `peers.py --pass train`). Only the pass named by
--pass (default forward) is read, so forward and training-step files can be
given together; a training-step table says so in its heading.
"""

import argparse
import json
import math
import sys
from collections import defaultdict

KEYS = ["impl", "isa", "dtype", "cell", "batch", "hidden", "input", "steps", "threads", "s_per_seq", "gflops"]
CONFIGS = [(1, 256, 256, 100), (1, 512, 512, 100), (1, 1024, 1024, 100),
           (16, 512, 512, 50), (64, 512, 512, 50), (64, 1024, 1024, 25)]
CELL_ORDER = ["lstm", "gru", "rnn"]
DTYPE_ORDER = ["f32", "f16", "bf16"]
PEER_ORDER = ["torch", "onnxruntime"]
# Rows of `bound --json`: not a peer, the machine's limit for each configuration.
BOUND = "bound"


def order_key(seq, x):
    return (seq.index(x), "") if x in seq else (len(seq), str(x))


def read_records(paths, pass_="forward"):
    best = {}
    for path in paths:
        f = sys.stdin if path == "-" else open(path)
        with f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    print(f"join: {path}:{n}: skipping bad JSON ({e})", file=sys.stderr)
                    continue
                missing = [k for k in KEYS if k not in r]
                if missing:
                    print(f"join: {path}:{n}: skipping, missing keys {missing}", file=sys.stderr)
                    continue
                if r.get("pass", "forward") != pass_:
                    continue
                key = (str(r["impl"]), str(r["isa"]), str(r["dtype"]), str(r["cell"]),
                       (int(r["batch"]), int(r["hidden"]), int(r["input"]), int(r["steps"])),
                       int(r["threads"]))
                s = float(r["s_per_seq"])
                if not (s > 0 and math.isfinite(s)):
                    continue
                if key not in best or s < best[key]:
                    best[key] = s
    return best


def fmt_ms(s):
    if s is None:
        return "-"
    ms = s * 1e3
    if ms < 10:
        return f"{ms:.3f}"
    if ms < 100:
        return f"{ms:.2f}"
    return f"{ms:.1f}"


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}×"


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="JSON-lines files ('-' for stdin)")
    p.add_argument("--ours", default="rnn-kernels", help="impl name of our rows (default rnn-kernels)")
    p.add_argument("--half-vs-f32", action="store_true",
                   help="add a section comparing our f16/bf16 rows with the peers' f32 rows "
                        "(mixed precision, labelled as such)")
    p.add_argument("--pass", dest="pass_", choices=["forward", "train"], default="forward",
                   help="which records to join: forward passes (default) or training steps")
    a = p.parse_args(argv)

    best = read_records(a.files, a.pass_)
    what = " (training step: forward + backward)" if a.pass_ == "train" else ""
    if not best:
        print("join: no records found", file=sys.stderr)
        return 1

    # group -> row -> impl -> isa -> seconds
    groups = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for (impl, isa, dtype, cell, shape, threads), s in best.items():
        groups[(dtype, threads)][(cell, shape)][impl][isa] = s

    summary = []
    first = True
    for (dtype, threads) in sorted(groups, key=lambda g: (order_key(DTYPE_ORDER, g[0]), g[1])):
        rows = groups[(dtype, threads)]
        impls = {impl for r in rows.values() for impl in r}
        our_isas = sorted({isa for r in rows.values() for isa in r.get(a.ours, {})})
        peers = sorted(set(PEER_ORDER) | (impls - {a.ours, BOUND}), key=lambda x: order_key(PEER_ORDER, x))
        with_bound = BOUND in impls
        peer_isas = {pi: sorted({isa for r in rows.values() for isa in r.get(pi, {})}) for pi in peers}

        if not first:
            print()
        first = False
        print(f"### {dtype}, {threads} thread{'s' if threads != 1 else ''}{what}")
        print()
        notes = [f"{a.ours}: {', '.join(our_isas) if our_isas else 'no data'}"]
        notes += [f"{pi}: {', '.join(peer_isas[pi]) if peer_isas[pi] else 'no data'}" for pi in peers]
        print("ISA / backend — " + "; ".join(notes) + ".")
        print()

        if len(our_isas) <= 1:
            our_cols = [(f"{a.ours} ms" + (f" ({our_isas[0]})" if our_isas else ""), our_isas)]
        else:
            our_cols = [(f"{a.ours} {isa} ms", [isa]) for isa in our_isas]
        header = ["cell", "B,H,I,T"] + [c for c, _ in our_cols] + [f"{pi} ms" for pi in peers] + \
                 ["best peer", "speedup (best peer ÷ ours)"]
        extra = ["bound ms", "ceiling (best peer ÷ bound)"] if with_bound else []
        print("| " + " | ".join(header + extra) + " |")
        print("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 4) + ["---", "---:"]
                             + ["---:"] * len(extra)) + "|")

        ratios_best = []
        ratios_peer = defaultdict(list)
        ceilings = []
        for (cell, shape) in sorted(rows, key=lambda r: (order_key(CELL_ORDER, r[0]), order_key(CONFIGS, r[1]))):
            r = rows[(cell, shape)]
            ours_by_isa = r.get(a.ours, {})
            cells = [cell, ",".join(str(d) for d in shape)]
            for _, isas in our_cols:
                vals = [ours_by_isa[i] for i in isas if i in ours_by_isa]
                cells.append(fmt_ms(min(vals) if vals else None))
            ours = min(ours_by_isa.values()) if ours_by_isa else None
            peer_t = {}
            for pi in peers:
                v = r.get(pi)
                peer_t[pi] = min(v.values()) if v else None
                cells.append(fmt_ms(peer_t[pi]))
            have = {pi: t for pi, t in peer_t.items() if t is not None}
            if have:
                bp = min(have, key=have.get)
                cells.append(bp)
            else:
                bp = None
                cells.append("-")
            ratio = have[bp] / ours if (bp is not None and ours is not None) else None
            cells.append(fmt_ratio(ratio))
            if ratio is not None:
                ratios_best.append(ratio)
            if ours is not None:
                for pi, t in have.items():
                    ratios_peer[pi].append(t / ours)
            if with_bound:
                bt = min(r[BOUND].values()) if BOUND in r else None
                ceil = have[bp] / bt if (bp is not None and bt is not None) else None
                cells += [fmt_ms(bt), fmt_ratio(ceil)]
                if ceil is not None and ratio is not None:
                    ceilings.append(ceil)
            print("| " + " | ".join(cells) + " |")

        print()
        gm = geomean(ratios_best)
        tail = "; ".join(f"vs {pi} {fmt_ratio(geomean(ratios_peer[pi]))} ({len(ratios_peer[pi])})"
                         for pi in peers if ratios_peer[pi])
        line = (f"Geometric-mean speedup over the best peer, {dtype}, {threads} thread"
                f"{'s' if threads != 1 else ''}: {fmt_ratio(gm)} over {len(ratios_best)} configurations"
                + (f" ({tail})" if tail else "") + ".")
        print(line)
        if ceilings:
            print()
            print(f"At the bound (every configuration as fast as this machine's measured peak / "
                  f"bandwidth allow), the geometric-mean speedup over the best peer would be "
                  f"{fmt_ratio(geomean(ceilings))} over {len(ceilings)} configurations.")
        summary.append((threads, dtype, gm, len(ratios_best), tail))

    print()
    print(f"### Summary: geometric-mean speedup of rnn-kernels over the best peer{what}")
    print()
    print("| threads | dtype | speedup | configurations | per peer (configurations) |")
    print("|---:|---|---:|---:|---|")
    for threads, dtype, gm, n, tail in sorted(summary, key=lambda x: (x[0], order_key(DTYPE_ORDER, x[1]))):
        print(f"| {threads} | {dtype} | {fmt_ratio(gm)} | {n} | {tail or '-'} |")

    if a.half_vs_f32:
        half_vs_f32(best, a.ours)
    return 0


def half_vs_f32(best, ours_name):
    """Our f16/bf16 rows against the peers' f32 rows (and our own f32), per thread count."""
    # (threads, cell, shape) -> dtype -> impl -> seconds (best over ISAs)
    t = defaultdict(lambda: defaultdict(dict))
    for (impl, _isa, dtype, cell, shape, threads), s in best.items():
        d = t[(threads, cell, shape)][dtype]
        d[impl] = min(s, d.get(impl, s))
    half_dtypes = [d for d in DTYPE_ORDER if d != "f32"]
    thread_counts = sorted({k[0] for k, v in t.items()
                            if any(ours_name in v.get(d, {}) for d in half_dtypes)})
    print()
    print("### Mixed precision: rnn-kernels f16/bf16 vs the peers in f32")
    print()
    if not thread_counts:
        print(f"No {ours_name} f16/bf16 rows found (run `report --json --dtype f32,f16,bf16`).")
        return
    print(f"**Not a like-for-like comparison**: the peer columns are f32 runs (ONNX Runtime has no "
          f"half-precision RNN kernels on CPU); the {ours_name} f16/bf16 columns store weights, "
          f"inputs and outputs in the half type (f32 arithmetic inside), so their outputs carry "
          f"half-precision rounding. Same-dtype comparisons with torch are in the f16/bf16 tables "
          f"above. Speedup = best f32 peer time ÷ our half time (> 1: ours faster); "
          f"× own f32 = our f32 time ÷ our half time.")
    for threads in thread_counts:
        keys = sorted((k for k in t if k[0] == threads
                       and any(ours_name in t[k].get(d, {}) for d in half_dtypes)),
                      key=lambda k: (order_key(CELL_ORDER, k[1]), order_key(CONFIGS, k[2])))
        dts = [d for d in half_dtypes if any(ours_name in t[k].get(d, {}) for k in keys)]
        peers = sorted({impl for k in keys for impl in t[k].get("f32", {}) if impl not in (ours_name, BOUND)},
                       key=lambda x: order_key(PEER_ORDER, x))
        print()
        print(f"#### {ours_name} half vs peers f32, {threads} thread{'s' if threads != 1 else ''}")
        print()
        header = ["cell", "B,H,I,T", f"{ours_name} f32 ms"] + [f"{ours_name} {d} ms" for d in dts] + \
                 [f"{d} × own f32" for d in dts] + [f"{pi} f32 ms" for pi in peers] + \
                 ["best f32 peer"] + [f"speedup {d} (best f32 peer ÷ ours {d})" for d in dts]
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---", "---"] + ["---:"] * (1 + 2 * len(dts) + len(peers)) + ["---"]
                             + ["---:"] * len(dts)) + "|")
        ratios = defaultdict(list)
        for k in keys:
            _, cell, shape = k
            row = t[k]
            f32 = row.get("f32", {})
            ours_f32 = f32.get(ours_name)
            ours_h = {d: row.get(d, {}).get(ours_name) for d in dts}
            cells = [cell, ",".join(str(x) for x in shape), fmt_ms(ours_f32)]
            cells += [fmt_ms(ours_h[d]) for d in dts]
            cells += [fmt_ratio(ours_f32 / ours_h[d] if ours_f32 and ours_h[d] else None) for d in dts]
            peer_t = {pi: f32.get(pi) for pi in peers}
            cells += [fmt_ms(peer_t[pi]) for pi in peers]
            have = {pi: v for pi, v in peer_t.items() if v is not None}
            bp = min(have, key=have.get) if have else None
            cells.append(f"{bp} (f32)" if bp else "-")
            for d in dts:
                r = have[bp] / ours_h[d] if (bp and ours_h[d]) else None
                if r is not None:
                    ratios[d].append(r)
                cells.append(fmt_ratio(r))
            print("| " + " | ".join(cells) + " |")
        print()
        for d in dts:
            print(f"Geometric-mean speedup of {ours_name} {d} over the best f32 peer (mixed precision), "
                  f"{threads} thread{'s' if threads != 1 else ''}: {fmt_ratio(geomean(ratios[d]))} "
                  f"over {len(ratios[d])} configurations.")


if __name__ == "__main__":
    sys.exit(main())
