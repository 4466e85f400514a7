#!/usr/bin/env python3
"""Compares the per-round results of two or more metrics.jsonl files exactly (losses per client,
sampled sets, active edges). Fields that legitimately differ between runs (wall time, bytes moved,
which depend on the rank count) are ignored. Exit 1 with the first difference.
usage: compare_metrics.py A/metrics.jsonl B/metrics.jsonl [...]"""
import json
import sys

IGNORED = {"seconds", "comm_bytes", "phase_seconds_min_max"}  # timings differ run to run


def rounds(path):
    out = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "round":
                out.append({k: v for k, v in rec.items() if k not in IGNORED})
    if not out:
        sys.exit(f"{path}: no round records")
    return out


def main():
    paths = sys.argv[1:]
    if len(paths) < 2:
        sys.exit(__doc__)
    ref = rounds(paths[0])
    for p in paths[1:]:
        other = rounds(p)
        if len(other) != len(ref):
            sys.exit(f"{p}: {len(other)} rounds, {paths[0]}: {len(ref)}")
        for a, b in zip(ref, other):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    sys.exit(f"round {a['round']}: '{key}' differs\n  {paths[0]}: {a.get(key)}\n  {p}: {b.get(key)}")
    print(f"identical: {len(ref)} rounds in {len(paths)} runs")


if __name__ == "__main__":
    main()
