#!/usr/bin/python3
"""Plots of a mira-hpc checkpoint (format: docs/checkpoint-format.md), written as PNG files.

  loss_curves.png   train loss (left) and test loss (right) per round: one thin line per client
                    (train loss only in the rounds the client was sampled), the mean over clients thick
  similarity.png    three K x K heatmaps side by side: the graph weights a_kl, the cosine similarity of
                    the clients' whole flat adapters (every lora_A and lora_B), and that of the lora_B
                    parts alone (B starts at zero, so it shows what training and aggregation added;
                    A starts identical for every client and dominates the whole-adapter cosine)

The checkpoint is verified first (format name and version, every CRC32C, via read_checkpoint.py);
a missing, corrupt or foreign file is refused with one line on stderr and exit status 1.

Needs Debian's python3-h5py, python3-numpy and python3-matplotlib (no ML stack). Examples:
    scripts/analyze_checkpoint.py runs/x/checkpoints --out runs/x/plots
    scripts/analyze_checkpoint.py runs/x/checkpoints/ckpt-12.h5 --out plots --skip-crc
Exit status: 0 written, 1 refused, 2 usage error.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import h5py  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import read_checkpoint as rc  # noqa: E402  (resolve, verify, attr_str, Refused)

# Up to this many clients the heatmaps carry client ids on the axes and every client gets its own
# legend entry; beyond, ticks are thinned and the legend shows only the mean.
LABELLED_CLIENTS = 20


def load(f, skip_crc):
    """What the plots need, as numpy arrays; verifies the file first unless skip_crc."""
    if skip_crc:
        if "format" not in f.attrs or rc.attr_str(f, "format") != rc.FORMAT_NAME:
            raise rc.Refused(f"not a {rc.FORMAT_NAME} file")
        if int(f.attrs["format_version"]) != rc.FORMAT_VERSION:
            raise rc.Refused(f"format version {int(f.attrs['format_version'])}; this script reads version "
                             f"{rc.FORMAT_VERSION}")
    else:
        rc.verify(f)
    K = int(f.attrs["clients"])
    d = {
        "K": K,
        "round": int(f.attrs["round"]),
        "algorithm": rc.attr_str(f, "algorithm"),
        "weights": f["graph/weights"][...],
        "metrics": {name: f["metrics"][name][...] for name in f["metrics"].keys()},
    }
    # Gram matrices of the A parts and the B parts, accumulated module by module in float64.
    gram_a = np.zeros((K, K))
    gram_b = np.zeros((K, K))
    for name in sorted(f["adapters"].keys()):
        g = f["adapters"][name]
        a = g["lora_A"][...].reshape(K, -1).astype(np.float64)  # (K, L*r*in)
        b = g["lora_B"][...].reshape(K, -1).astype(np.float64)  # (K, L*out*r)
        gram_a += a @ a.T
        gram_b += b @ b.T
    d["cosine"] = cosine(gram_a + gram_b)
    d["cosine_b"] = cosine(gram_b)
    return d


def cosine(gram):
    """Cosine similarity from a Gram matrix; NaN where an adapter is zero."""
    n = np.sqrt(np.diag(gram))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = gram / np.outer(n, n)
    c[~np.isfinite(c)] = np.nan
    return c


def plot_losses(d, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    K = d["K"]
    for ax, name, title in ((axes[0], "train_loss", "train loss (sampled clients)"),
                            (axes[1], "test_loss", "test loss (own adapter, own test split)")):
        m = d["metrics"].get(name)
        ax.set_title(title)
        ax.set_xlabel("round")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds are whole numbers
        if m is None or m.size == 0 or not np.isfinite(m).any():
            ax.text(0.5, 0.5, f"no {name} recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        rounds = np.arange(1, m.shape[0] + 1)
        cmap = plt.get_cmap("tab20" if K <= 20 else "viridis")
        for k in range(m.shape[1]):
            ok = np.isfinite(m[:, k])
            label = f"client {k}" if K <= LABELLED_CLIENTS else None
            ax.plot(rounds[ok], m[ok, k], marker="o", markersize=3, linewidth=0.8, alpha=0.6,
                    color=cmap(k / max(K - 1, 1)), label=label)
        rows = np.isfinite(m).any(axis=1)
        mean = np.full(m.shape[0], np.nan)
        mean[rows] = np.nanmean(m[rows], axis=1)
        ax.plot(rounds[rows], mean[rows], color="black", linewidth=2.5, marker="s", markersize=4,
                label="mean over clients")
        ax.legend(fontsize=7, ncol=2 if K > 10 else 1, loc="best")
    fig.suptitle(f"{d['algorithm']}: K = {K}, {d['round']} rounds")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def heatmap(fig, ax, m, title, vmin=None, vmax=None, cmap="viridis"):
    K = m.shape[0]
    im = ax.imshow(np.ma.masked_invalid(m), vmin=vmin, vmax=vmax, cmap=cmap, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("client")
    ax.set_ylabel("client")
    step = 1 if K <= LABELLED_CLIENTS else int(np.ceil(K / 10))
    ticks = np.arange(0, K, step)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    fig.colorbar(im, ax=ax, shrink=0.8)


def finite_range(m):
    off = m[~np.eye(m.shape[0], dtype=bool)]
    off = off[np.isfinite(off)]
    return (float(off.min()), float(off.max())) if off.size else (0.0, 1.0)


def plot_similarity(d, path):
    fig, axes = plt.subplots(1, 3, figsize=(16, 5), constrained_layout=True)
    heatmap(fig, axes[0], d["weights"], "graph weights a_kl", vmin=0.0, cmap="Greys")
    lo, hi = finite_range(d["cosine"])  # whole adapters are close to 1: scale to the off-diagonal range
    heatmap(fig, axes[1], d["cosine"], f"cosine, whole adapters\n(off-diagonal {lo:.4f} .. {hi:.4f})",
            vmin=lo, vmax=max(hi, lo + 1e-6))
    heatmap(fig, axes[2], d["cosine_b"], "cosine, lora_B parts only\n(grey: B still zero)", vmin=-1.0, vmax=1.0,
            cmap="RdBu_r")
    axes[2].set_facecolor("lightgrey")
    fig.suptitle(f"{d['algorithm']}: adapters after {d['round']} rounds, K = {d['K']}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="checkpoint file, or a checkpoint directory (its `latest` is used)")
    ap.add_argument("--out", default="analysis", help="folder for the PNG files (created; default: analysis)")
    ap.add_argument("--skip-crc", action="store_true",
                    help="check only format name and version (the pure-Python CRC32C runs at ~10 MB/s)")
    args = ap.parse_args(argv)
    try:
        path = rc.resolve(args.path)
        if not os.path.isfile(path):
            raise rc.Refused("it does not exist" if not os.path.exists(path) else "it is not a file")
        with h5py.File(path, "r") as f:
            d = load(f, args.skip_crc)
    except (rc.Refused, OSError, KeyError, RuntimeError, ValueError) as e:  # h5py: OSError/RuntimeError
        print(f"analyze_checkpoint: checkpoint {args.path} refused: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1

    os.makedirs(args.out, exist_ok=True)
    written = []
    for name, fn in (("loss_curves.png", plot_losses), ("similarity.png", plot_similarity)):
        target = os.path.join(args.out, name)
        fn(d, target + ".tmp.png")
        os.replace(target + ".tmp.png", target)  # never a half-written PNG under the final name
        written.append(target)
    for w in written:
        print(w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
