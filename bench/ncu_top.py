#!/usr/bin/env python3
"""Per-kernel time table from Nsight Compute CSV (`ncu --csv --metrics gpu__time_duration.sum ...`):
kernels grouped by name (first 70 characters) and grid, sorted by total time, one line each:
total ms, launches, mean us, name, grid. Used by bench/gpu_session.sh (step `ncu`).
usage: bench/ncu_top.py NCU_CSV [--top 30]"""
import collections
import csv
import sys


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 30
    with open(argv[1], errors="replace") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own log lines are not quoted
    agg = collections.defaultdict(lambda: [0, 0.0])
    total = 0.0
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        us = {"nsecond": v / 1e3, "ns": v / 1e3, "usecond": v, "us": v, "msecond": v * 1e3, "ms": v * 1e3}.get(
            r["Metric Unit"], v / 1e3)
        a = agg[(r["Kernel Name"][:70], r["Grid Size"])]
        a[0] += 1
        a[1] += us
        total += us
    if not agg:
        print("ncu_top: no kernel times in " + argv[1])
        return 1
    print(f"kernels {sum(a[0] for a in agg.values())}, total {total / 1e3:.2f} ms")
    for (name, grid), (n, us) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{us / 1e3:8.3f} ms {n:5d}x {us / n:9.1f} us  {name} grid{grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
