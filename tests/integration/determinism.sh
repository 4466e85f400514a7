#!/usr/bin/env bash
# Same config and seed -> bitwise-identical losses whatever the rank count and threads per rank
# (DESIGN.md, Determinism). Runs K = 8 clients with sampling on 1, 2 and 4 ranks (and 2 threads per
# rank on 1 rank) for each algorithm, and compares every per-client loss of every round exactly.
# usage: determinism.sh MPIEXEC MIRA_HPC ALGORITHM
set -euo pipefail
mpiexec=$1 bin=$2 algorithm=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--run.algorithm "$algorithm" --run.clients 8 --federation.sample_fraction 0.5 --run.rounds 3
        --train.mode steps --train.local_steps 2 --train.batch_size 4 --lora.rank 4 --lora.dropout 0.1
        --optim.lr 1e-3 --data.examples_per_client 12 --log-level warn)
if [ "$algorithm" = mira ]; then common+=(--mira.lambda 20 --federation.graph random); fi
# Extra options from the environment (e.g. MIRA_TEST_EXTRA="--optim.keep_state true").
read -r -a extra_opts <<< "${MIRA_TEST_EXTRA:-}"
common+=("${extra_opts[@]}")
run() {  # run NAME RANKS THREADS
  OMP_NUM_THREADS=$3 "$mpiexec" -n "$2" "$bin" train "${common[@]}" --run.threads "$3" --run.output "$work/$1" >"$work/$1.log" 2>&1 ||
    { cat "$work/$1.log"; exit 1; }
}
run np1 1 1
run np2 2 1
run np4 4 1
run np1t2 1 2
python3 "$(dirname "$0")/compare_metrics.py" "$work"/np1/metrics.jsonl "$work"/np2/metrics.jsonl \
  "$work"/np4/metrics.jsonl "$work"/np1t2/metrics.jsonl
