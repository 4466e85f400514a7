#!/usr/bin/env python3
"""Checks the global loss matrix of a metrics.jsonl written with eval.global_matrix = true
(docs/metrics.md): every evaluated round has a K x K loss_matrix whose diagonal is exactly the
round's client_test_loss (the same evaluation of the same adapter bits); client_global_loss[k]
(token-pooled over all splits) lies within row k's range; global_loss is the mean of
client_global_loss; with FedIT every row is the global adapter's, so all rows are equal; with
MIRA or local the rows differ (each client has its own adapter). Exit 1 with the first failure.
usage: check_global_matrix.py METRICS.jsonl ALGORITHM"""
import json
import math
import sys


def fail(msg):
    sys.exit(f"check_global_matrix: {msg}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, algorithm = sys.argv[1:]
    evaluated = 0
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") != "round" or "client_test_loss" not in rec:
                continue
            evaluated += 1
            r, own = rec["round"], rec["client_test_loss"]
            m, g = rec.get("loss_matrix"), rec.get("client_global_loss")
            if m is None or g is None or "global_loss" not in rec:
                fail(f"round {r}: evaluated but no loss_matrix / client_global_loss / global_loss")
            K = len(own)
            if len(m) != K or any(len(row) != K for row in m) or len(g) != K:
                fail(f"round {r}: matrix is not {K} x {K}")
            for k in range(K):
                if m[k][k] != own[k]:
                    fail(f"round {r}: loss_matrix[{k}][{k}] = {m[k][k]} != client_test_loss[{k}] = {own[k]}")
                lo, hi = min(m[k]), max(m[k])
                if not lo - 1e-12 <= g[k] <= hi + 1e-12:
                    fail(f"round {r}: client_global_loss[{k}] = {g[k]} outside row {k}'s range [{lo}, {hi}]")
            mean = sum(g) / K
            if not math.isclose(rec["global_loss"], mean, rel_tol=1e-12):
                fail(f"round {r}: global_loss {rec['global_loss']} != mean of client_global_loss {mean}")
            rows_equal = all(row == m[0] for row in m)
            if algorithm == "fedit" and not rows_equal:
                fail(f"round {r}: fedit rows differ (every client holds the global adapter)")
            if algorithm != "fedit" and rows_equal:
                fail(f"round {r}: {algorithm} rows are all equal (clients should hold their own adapters)")
    if evaluated == 0:
        fail(f"{path}: no evaluated rounds")
    print(f"global matrix consistent in {evaluated} evaluated rounds")


if __name__ == "__main__":
    main()
