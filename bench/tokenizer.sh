#!/bin/bash
# Tokenizer benchmark: GPT-2 byte-level BPE encode throughput (MB/s of UTF-8 input, one core) of
# ours against Hugging Face `tokenizers`, on the same generated corpus; also checks that both give
# the same ids (checksum). One JSON line per figure on stdout, human text on stderr.
#   bench/tokenizer.sh [--tokenizer FOLDER] [--mb MEGABYTES]
# FOLDER: a Hugging Face folder with tokenizer.json (default: the committed 2300-token test
# tokenizer, tests/fixtures/data/bpe); --mb: corpus size (default 4). Needs the build's
# libmira_data.a (MIRA_BUILD_DIR, default build/; built here if missing) and /root/mira-venv (or
# MIRA_PYTHON) for the peer.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MIRA_BUILD_DIR:-$ROOT/build}
PY=${MIRA_PYTHON:-/root/mira-venv/bin/python}
TOK=""
MB=4
while [ $# -gt 0 ]; do
  case "$1" in
    --tokenizer) TOK=$2; shift 2 ;;
    --mb) MB=$2; shift 2 ;;
    *) echo "usage: $0 [--tokenizer FOLDER] [--mb MEGABYTES]" >&2; exit 2 ;;
  esac
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -z "$TOK" ]; then
  TOK=$WORK/tok
  mkdir -p "$TOK"
  cp "$ROOT/tests/fixtures/data/bpe/tokenizer_pairs.json" "$TOK/tokenizer.json"
  CONFIG="test-bpe-2300"
else
  CONFIG="$(basename "$TOK")"
fi

cmake --build "$BUILD" --target mira_data >&2
# The timing driver: a few lines of C++ against libmira_data (kept here so that the benchmark
# needs no CMake target).
cat > "$WORK/bench.cpp" <<'CPP'
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include "data/bpe_tokenizer.h"
int main(int argc, char** argv) {
  mira::BpeTokenizer tok(argv[1]);
  std::vector<std::string> lines;
  std::ifstream in(argv[2]);
  std::string l;
  size_t bytes = 0;
  while (std::getline(in, l)) { lines.push_back(nlohmann::json::parse(l).get<std::string>()); bytes += lines.back().size(); }
  double best = 1e30;
  uint64_t checksum = 0, tokens = 0;
  for (int rep = 0; rep < 3; ++rep) {  // best of three; the first also warms the piece cache as HF's does
    mira::BpeTokenizer fresh(argv[1]);
    auto t0 = std::chrono::steady_clock::now();
    checksum = 0; tokens = 0;
    for (const auto& s : lines) {
      for (int32_t id : fresh.encode(s)) { checksum = (unsigned __int128)(checksum * 1000003ull + id) % (1ull << 61); ++tokens; }
    }
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt < best) best = dt;
  }
  std::printf("{\"MBps\": %.4f, \"checksum\": %llu, \"tokens\": %llu, \"bytes\": %zu}\n", bytes / 1e6 / best,
              (unsigned long long)checksum, (unsigned long long)tokens, bytes);
}
CPP
MPI_INC=$(mpicxx --showme:compile 2>/dev/null || true)
g++ -O3 -std=c++17 -I"$ROOT/src" $MPI_INC -I/usr/include/hdf5/openmpi "$WORK/bench.cpp" -o "$WORK/bench" \
  "$BUILD/src/libmira_data.a" "$BUILD/src/libmira_io.a" "$BUILD/src/libmira_runtime.a" -lpcre2-8 \
  $(mpicxx --showme:link 2>/dev/null || true) -fopenmp >&2

"$PY" "$ROOT/bench/tokenizer_peer.py" corpus "$WORK/corpus.jsonl" "$MB"
OURS=$(taskset -c 0 "$WORK/bench" "$TOK" "$WORK/corpus.jsonl" 2>/dev/null || "$WORK/bench" "$TOK" "$WORK/corpus.jsonl")
PEER=$(taskset -c 0 "$PY" "$ROOT/bench/tokenizer_peer.py" time "$TOK/tokenizer.json" "$WORK/corpus.jsonl" 2>/dev/null || \
       "$PY" "$ROOT/bench/tokenizer_peer.py" time "$TOK/tokenizer.json" "$WORK/corpus.jsonl")
echo "ours: $OURS" >&2
echo "hf-tokenizers: $PEER" >&2
"$PY" - "$OURS" "$PEER" "$CONFIG" "$MB" <<'PYEOF'
import json, sys
o, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
same = o["checksum"] == p["checksum"] and o["tokens"] == p["tokens"]
if not same:
    print("WARNING: ids differ from hf-tokenizers (checksums %d vs %d)" % (o["checksum"], p["checksum"]), file=sys.stderr)
print(json.dumps({"bench": "tokenizer", "metric": "encode_MBps", "value": round(o["MBps"], 3), "unit": "MB/s",
                  "peer": "hf-tokenizers", "peer_value": round(p["MBps"], 3), "ratio": round(o["MBps"] / p["MBps"], 3),
                  "config": "%s corpus %sMB 1 core ids_match=%s" % (sys.argv[3], sys.argv[4], same)}))
PYEOF
