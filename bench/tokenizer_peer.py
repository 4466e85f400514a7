#!/usr/bin/env python3
"""Peer side of bench/tokenizer.sh: writes the benchmark corpus and times Hugging Face `tokenizers`
on it (one core: RAYON_NUM_THREADS=1; encode_batch_fast, or encode_batch on older versions, so
that Python's per-call cost is not timed).

  tokenizer_peer.py corpus OUT.jsonl MEGABYTES      generate a corpus (JSON strings, one per line)
  tokenizer_peer.py time TOKENIZER_JSON CORPUS      print {"MBps": .., "checksum": .., "tokens": ..}
The corpus comes from scripts/make_tokenizer_fixtures.py's line generator (seeded; words, digits,
contractions, whitespace runs, several scripts and emoji), so no download is needed.
"""
import importlib.util
import json
import os
import random
import sys
import time


def corpus(out, megabytes):
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("fx", os.path.join(here, "..", "scripts", "make_tokenizer_fixtures.py"))
    fx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fx)
    rng = random.Random(2026)
    total = 0
    with open(out, "w", encoding="utf-8") as f:
        while total < megabytes * 1e6:
            t = fx.line(rng)
            total += len(t.encode("utf-8"))
            f.write(json.dumps(t, ensure_ascii=False) + "\n")


def time_hf(tokenizer_json, path):
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer_json)
    lines = [json.loads(l) for l in open(path, encoding="utf-8")]
    nbytes = sum(len(t.encode("utf-8")) for t in lines)
    # encode_batch_fast (tokenizers >= 0.21) skips offset tracking: the strongest peer for ids only.
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    encode(lines[:1000], add_special_tokens=False)  # warm-up
    best = None
    for _ in range(3):  # best of three, as for ours
        t0 = time.perf_counter()
        enc = encode(lines, add_special_tokens=False)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    checksum = 0
    tokens = 0
    for e in enc:
        for i, x in enumerate(e.ids):
            checksum = (checksum * 1000003 + x) % (1 << 61)
        tokens += len(e.ids)
    print(json.dumps({"MBps": nbytes / 1e6 / best, "checksum": checksum, "tokens": tokens, "bytes": nbytes}))


if __name__ == "__main__":
    if sys.argv[1] == "corpus":
        corpus(sys.argv[2], float(sys.argv[3]))
    else:
        time_hf(sys.argv[2], sys.argv[3])
