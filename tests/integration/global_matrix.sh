#!/usr/bin/env bash
# eval.global_matrix = true (docs/metrics.md): the K x K loss matrix and each adapter's global loss
# are bitwise the same on 1 and 3 ranks, consistent with the per-client test losses
# (check_global_matrix.py), and absent when the key is off.
# usage: global_matrix.sh MPIEXEC MIRA_HPC ALGORITHM
set -euo pipefail
mpiexec=$1 bin=$2 algorithm=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--run.algorithm "$algorithm" --run.clients 5 --federation.sample_fraction 0.6 --run.rounds 3
        --eval.every 2 --train.mode steps --train.local_steps 2 --train.batch_size 4 --lora.rank 4
        --optim.lr 1e-3 --data.examples_per_client 12 --log-level warn)
if [ "$algorithm" = mira ]; then common+=(--mira.lambda 20 --federation.graph random); fi
run() {  # run NAME RANKS [extra options]
  local name=$1 np=$2
  shift 2
  "$mpiexec" -n "$np" "$bin" train "${common[@]}" "$@" --run.output "$work/$name" >"$work/$name.log" 2>&1 ||
    { cat "$work/$name.log"; exit 1; }
}
run np1 1 --eval.global_matrix true
run np3 3 --eval.global_matrix true
run off 1
python3 "$here/compare_metrics.py" "$work"/np1/metrics.jsonl "$work"/np3/metrics.jsonl
python3 "$here/check_global_matrix.py" "$work"/np1/metrics.jsonl "$algorithm"
grep -q "mean global loss" "$work/np1.log" || { echo "summary has no global loss line"; cat "$work/np1.log"; exit 1; }
if grep -q '"loss_matrix"' "$work"/off/metrics.jsonl; then
  echo "loss_matrix written although eval.global_matrix is off"
  exit 1
fi
echo "global matrix: $algorithm ok"
