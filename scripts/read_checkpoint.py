#!/usr/bin/env python3
"""Offline reader for mira-hpc checkpoints (format: docs/checkpoint-format.md).

Verifies a checkpoint (format name and version, the CRC32C of every per-client slice and of every
run-wide dataset), prints a summary (round, K, algorithm, modules, per-client losses of the last
recorded round), and exports one client's adapter as PEFT-named arrays.

Needs h5py and numpy only (e.g. /root/mira-venv/bin/python). Examples:
    scripts/read_checkpoint.py runs/x/checkpoints            # the `latest` checkpoint there
    scripts/read_checkpoint.py runs/x/checkpoints/ckpt-12.h5 --json
    scripts/read_checkpoint.py ckpt-12.h5 --export-client 3 --out client3.npz
Check of the committed fixture written by the C++ writer:
    scripts/read_checkpoint.py tests/fixtures/io | diff - tests/fixtures/io/ckpt-3.summary.txt
Exit status: 0 verified, 1 refused (bad format, version or checksum), 2 usage error.
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np

FORMAT_NAME = "mira-hpc-checkpoint"
FORMAT_VERSION = 1
# PEFT state-dict prefix of GPT-2 blocks: base_model.model.transformer.h.<layer>.<module_path>.lora_A.weight
PEFT_BLOCK_PREFIX = "base_model.model.transformer.h."


def _crc32c_table():
    poly = 0x82F63B78  # Castagnoli, bit-reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC32C of a bytes-like object, same as src/io/crc32c.cpp (pure Python: ~10 MB/s)."""
    table = _TABLE
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = (c >> 8) ^ table[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


class Refused(Exception):
    pass


def resolve(path):
    """A checkpoint file, or a directory whose `latest` link names one."""
    if os.path.isdir(path):
        link = os.path.join(path, "latest")
        if not os.path.lexists(link):
            raise Refused(f"{path} has no 'latest' link; name a ckpt-<round>.h5 file")
        return os.path.join(path, os.readlink(link))
    return path


def attr_str(obj, name):
    v = obj.attrs[name]
    return v.decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v)


def slice_bytes(arr):
    """Bytes of one stored slice as the writer hashed them: C order, little-endian."""
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def verify(f):
    """Checks format, version and every checksum; returns the number of checksums verified."""
    if "format" not in f.attrs or attr_str(f, "format") != FORMAT_NAME:
        raise Refused(f"not a {FORMAT_NAME} file")
    version = int(f.attrs["format_version"])
    if version != FORMAT_VERSION:
        raise Refused(f"format version {version}; this script reads version {FORMAT_VERSION}")
    K = int(f.attrs["clients"])
    checked = 0
    per_client, run_wide = [], []
    f.visititems(lambda name, obj: (per_client if name + "_crc32c" in f else run_wide).append("/" + name)
                 if isinstance(obj, h5py.Dataset) and not name.endswith("_crc32c") else None)
    for name in per_client:
        data, crcs = f[name][...], f[name + "_crc32c"][...]
        if data.shape[0] != K or crcs.shape != (K,):
            raise Refused(f"dataset {name} has shape {data.shape}, expected K={K} rows")
        for k in range(K):
            got = crc32c(slice_bytes(data[k]))
            if got != int(crcs[k]):
                raise Refused(f"dataset {name} client {k} CRC32C mismatch "
                              f"(stored 0x{int(crcs[k]):08x}, computed 0x{got:08x})")
            checked += 1
    for name in run_wide:
        d = f[name]
        got = crc32c(slice_bytes(d[...]))
        if int(d.attrs["crc32c"]) != got:
            raise Refused(f"dataset {name} CRC32C mismatch (stored 0x{int(d.attrs['crc32c']):08x}, computed 0x{got:08x})")
        checked += 1
    return checked


def modules(f):
    """[(group name, module_path, L, r, in, out)] in name order."""
    out = []
    for name in sorted(f["adapters"].keys()):
        g = f["adapters"][name]
        _, L, r, fan_in = g["lora_A"].shape
        out_features = g["lora_B"].shape[2]
        out.append((name, attr_str(g, "module_path"), L, r, fan_in, out_features))
    return out


def summary(f, path, checked):
    K = int(f.attrs["clients"])
    s = {
        "file": os.path.basename(path),
        "format": attr_str(f, "format"),
        "format_version": int(f.attrs["format_version"]),
        "round": int(f.attrs["round"]),
        "clients": K,
        "algorithm": attr_str(f, "algorithm"),
        "seed": int(f.attrs["seed"]),
        "base_model_path": attr_str(f, "base_model_path"),
        "base_model_sha256": attr_str(f, "base_model_sha256"),
        "provenance": attr_str(f, "provenance"),
        "modules": [{"name": n, "module_path": p, "layers": L, "rank": r, "in": i, "out": o}
                    for n, p, L, r, i, o in modules(f)],
        "optimizer": "optimizer" in f,
        "sampling_rounds": int(f["sampling"].shape[0]),
        "checksums_verified": checked,
        "metrics": {},
    }
    for name in sorted(f["metrics"].keys()):
        d = f["metrics"][name]
        entry = {"shape": list(d.shape)}
        if d.shape[0] > 0 and d.shape[1] == K and name != "global_loss":
            entry["last_row"] = [float(x) for x in d[-1]]  # per client, last recorded round
        s["metrics"][name] = entry
    return s


def print_summary(s):
    print(f"{s['file']}: {s['format']} v{s['format_version']}, round {s['round']}, K={s['clients']}, "
          f"algorithm {s['algorithm']}, seed {s['seed']}")
    print(f"base model: {s['base_model_path']} sha256={s['base_model_sha256'] or '-'}")
    print(f"provenance: {s['provenance']}")
    for m in s["modules"]:
        print(f"module {m['name']} ({m['module_path']}): L={m['layers']} r={m['rank']} in={m['in']} out={m['out']}")
    print(f"optimizer state: {'yes' if s['optimizer'] else 'no'}; sampled rounds: {s['sampling_rounds']}")
    print(f"checksums verified: {s['checksums_verified']}")
    for name, e in s["metrics"].items():
        line = f"metric {name} {e['shape']}"
        if "last_row" in e:
            line += " last round per client: " + " ".join(f"{v:.6g}" for v in e["last_row"])
        print(line)


def export_client(f, client):
    """{PEFT name: array} for one client: lora_A.weight (r, in), lora_B.weight (out, r) per layer."""
    K = int(f.attrs["clients"])
    if not 0 <= client < K:
        raise ValueError(f"client {client} outside [0, {K})")
    out = {}
    for name, module_path, L, _, _, _ in modules(f):
        g = f["adapters"][name]
        a, b = g["lora_A"][client], g["lora_B"][client]  # (L, r, in), (L, out, r)
        for layer in range(L):
            prefix = f"{PEFT_BLOCK_PREFIX}{layer}.{module_path}"
            out[prefix + ".lora_A.weight"] = np.ascontiguousarray(a[layer])
            out[prefix + ".lora_B.weight"] = np.ascontiguousarray(b[layer])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="checkpoint file or checkpoint directory (uses `latest`)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--export-client", type=int, metavar="K", help="export client K's adapter")
    ap.add_argument("--out", help="with --export-client: output .npz (or .safetensors when installed)")
    args = ap.parse_args(argv)
    if args.export_client is not None and not args.out:
        ap.error("--export-client needs --out")
    try:
        path = resolve(args.path)
        with h5py.File(path, "r") as f:
            checked = verify(f)
            s = summary(f, path, checked)
            if args.json:
                print(json.dumps(s, indent=1))
            else:
                print_summary(s)
            if args.export_client is not None:
                tensors = export_client(f, args.export_client)
                if args.out.endswith(".safetensors"):
                    from safetensors.numpy import save_file
                    save_file(tensors, args.out)
                else:
                    np.savez(args.out, **tensors)
                print(f"exported client {args.export_client}: {len(tensors)} tensors -> {args.out}", file=sys.stderr)
    except (Refused, OSError, KeyError, RuntimeError) as e:  # h5py raises RuntimeError for HDF5 errors
        print(f"checkpoint {args.path} refused: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
