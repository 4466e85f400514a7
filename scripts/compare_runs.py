#!/usr/bin/env python3
"""Prints, per client, the final test loss of several runs of the same data and seed side by side
(from each run's metrics.jsonl: the last round with a test evaluation), with the mean and the
spread over clients, and which run has the lowest mean. Standard library only.
usage: compare_runs.py NAME=RUN_DIR [NAME=RUN_DIR ...]"""
import json
import statistics
import sys


def load(run_dir):
    header, last = None, None
    with open(f"{run_dir}/metrics.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "header":
                header = rec
            elif rec.get("type") == "round" and "client_test_loss" in rec:
                last = rec
    if header is None or last is None:
        sys.exit(f"{run_dir}/metrics.jsonl: no header or no evaluated round")
    return header, last


def main():
    runs = [a.split("=", 1) for a in sys.argv[1:]]
    if not runs or any(len(r) != 2 for r in runs):
        sys.exit(__doc__)
    loaded = [(name, *load(d)) for name, d in runs]
    header = loaded[0][1]
    tasks, families = header["tasks"], header["families"]
    names = [n for n, _, _ in loaded]
    print(f"final test loss per client (round {loaded[0][2]['round']}, own adapter; FedIT: the global one)")
    print(f"{'client':>6} {'task':<26} {'family':<12} " + " ".join(f"{n:>9}" for n in names))
    for k in range(len(tasks)):
        vals = [last["client_test_loss"][k] for _, _, last in loaded]
        best = min(v for v in vals if v is not None)
        cells = " ".join(f"{v:>8.4f}{'*' if v == best else ' '}" for v in vals)
        print(f"{k:>6} {tasks[k]:<26} {families[k]:<12} {cells}")
    means = []
    for name, _, last in loaded:
        v = [x for x in last["client_test_loss"] if x is not None]
        means.append((statistics.mean(v), statistics.pstdev(v), name))
    print(f"{'':>6} {'mean (std over clients)':<39} " + " ".join(f"{m:>6.4f}({s:.3f})" for m, s, _ in means))
    print(f"lowest mean test loss: {min(means)[2]}   (* marks the lowest per client)")


if __name__ == "__main__":
    main()
