#!/usr/bin/env bash
# Benchmark: tokens/s of LoRA training (forward + backward + clip + AdamW step) on the CPU backend,
# GPT-2 124M shape (12/12/768, vocab 50257), seq 512, batch 4, r 16 on the paper targets (c_attn +
# attn.c_proj + mlp.c_proj), LoRA dropout 0.05; ours (bench/train_cpu_main.cpp) vs PyTorch + HF
# transformers + PEFT (bench/train_cpu_peer.py, /root/mira-venv) with the same thread count, one
# after the other in the same run. One JSON line on stdout; progress on stderr.
#   bench/run.sh train_cpu [--threads 2] [--seq 512] [--batch 4] [--r 16] [--steps 3] [--warmup 1] [--repeat 1]
# --repeat N alternates ours/peer N times and reports the best tokens/s of each (a shared machine's
# load only ever slows a run down).
# Our driver binary: $MIRA_TRAIN_CPU_BIN, else ${MIRA_BUILD_DIR:-build/ci}/bench/train_cpu_main (the
# CMake target train_cpu_main, bench/CMakeLists.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
threads=2 seq=512 batch=4 r=16 steps=3 warmup=1 repeat=1
while [ $# -gt 0 ]; do
  case $1 in
    --threads) threads=$2 ;; --seq) seq=$2 ;; --batch) batch=$2 ;; --r) r=$2 ;;
    --steps) steps=$2 ;; --warmup) warmup=$2 ;; --repeat) repeat=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
bin=${MIRA_TRAIN_CPU_BIN:-}
if [ -z "$bin" ]; then
  for cand in "${MIRA_BUILD_DIR:-$root/build/ci}"/bench/train_cpu_main "$root"/build/*/bench/train_cpu_main; do
    if [ -x "$cand" ]; then bin=$cand; break; fi
  done
fi
[ -n "$bin" ] || { echo "train_cpu_main not built (cmake --build build --target train_cpu_main)" >&2; exit 2; }
py=${MIRA_PY:-/root/mira-venv/bin/python}
args=(--seq "$seq" --batch "$batch" --r "$r" --steps "$steps" --warmup "$warmup")
ours=() peer=()
for ((i = 1; i <= repeat; i++)); do
  echo "[$i/$repeat] ours: $bin ${args[*]} (OMP_NUM_THREADS=$threads)" >&2
  ours+=("$(OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "$bin" "${args[@]}")")
  echo "ours: ${ours[-1]}" >&2
  echo "[$i/$repeat] peer: torch+peft ${args[*]} --threads $threads" >&2
  peer+=("$(OMP_NUM_THREADS=$threads "$py" "$here/train_cpu_peer.py" "${args[@]}" --threads "$threads" 2>/dev/null)")
  echo "peer: ${peer[-1]}" >&2
done
"$py" - "$seq" "$batch" "$r" "$threads" "$repeat" "${ours[@]}" "${peer[@]}" <<'PY'
import json, sys
seq, batch, r, threads, repeat = sys.argv[1:6]
runs = [json.loads(x) for x in sys.argv[6:]]
n = int(repeat)
o = max(x["tokens_per_s"] for x in runs[:n])
p = max(x["tokens_per_s"] for x in runs[n:])
cfg = (f"gpt2-124m-shape seq{seq} b{batch} r{r} threads{threads} adamw lora_dropout0.05"
       + (f" best-of-{n}" if n > 1 else ""))
print(json.dumps({"bench": "train_cpu", "metric": "tokens_per_s", "value": round(o, 2), "unit": "tok/s",
                  "peer": "torch+peft", "peer_value": round(p, 2), "ratio": round(o / p, 3), "config": cfg}))
# Peak resident memory of the whole process (weights, activations, optimiser, runtime); ratio is
# peer / ours so that higher is better for us.
mo = min(x["peak_rss_mib"] for x in runs[:n])
mp = min(x["peak_rss_mib"] for x in runs[n:])
print(json.dumps({"bench": "train_cpu", "metric": "peak_rss", "value": round(mo, 1), "unit": "MiB",
                  "peer": "torch+peft", "peer_value": round(mp, 1), "ratio": round(mp / mo, 3), "config": cfg}))
PY
