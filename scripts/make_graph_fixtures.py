#!/usr/bin/env python3
# Regenerates tests/fixtures/fed/random_graph_K*_seed42.csv: the `random` graph of the MIRA authors'
# code (MIRA.md, Graph weights), made with numpy's legacy global generator exactly as they do:
#     np.random.seed(42); U = np.random.rand(K, K); a = (U + U.T) / 2; a[a < 0.25] = 0
# The matrix is written as is (diagonal included: the method ignores it; src/fed/graph.cpp sets it
# to 0), one row per line, every value with 17 significant digits so that it parses back to the same
# float64. tests/unit/fed/test_graph.cpp checks that our MT19937 implementation equals it bit for bit.
# Also writes random_graph_laplacian_max.txt: "K lambda_max" per line, the largest eigenvalue of the
# Laplacian L = D - M (diagonal of M zeroed) by numpy.linalg.eigvalsh, to check our Jacobi solver.
# Run:  /root/mira-venv/bin/python scripts/make_graph_fixtures.py   (from the repository root)
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "fed")


def paper_random_graph(K, seed):
    np.random.seed(seed)
    u = np.random.rand(K, K)
    a = (u + u.T) / 2
    a[a < 0.25] = 0
    return a


def main():
    os.makedirs(OUT, exist_ok=True)
    for K in (8, 80):
        a = paper_random_graph(K, 42)
        path = os.path.join(OUT, f"random_graph_K{K}_seed42.csv")
        with open(path, "w") as f:
            f.write(f"# numpy {np.__version__}: np.random.seed(42); U = np.random.rand({K}, {K}); "
                    "a = (U + U.T) / 2; a[a < 0.25] = 0 (diagonal as numpy gives it)\n")
            for row in a:
                f.write(",".join("%.17g" % v for v in row) + "\n")
        print(path)
    path = os.path.join(OUT, "random_graph_laplacian_max.txt")
    with open(path, "w") as f:
        f.write("# K lambda_max(D - M) of the paper random graph, seed 42, numpy.linalg.eigvalsh\n")
        for K in (8, 80):
            m = paper_random_graph(K, 42)
            np.fill_diagonal(m, 0.0)
            lap = np.diag(m.sum(axis=1)) - m
            f.write("%d %.17g\n" % (K, np.linalg.eigvalsh(lap).max()))
    print(path)


if __name__ == "__main__":
    main()
