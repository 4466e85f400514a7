#!/usr/bin/env bash
# `mpirun -np 64` (oversubscribed on a small machine, tiny model, 2 rounds): one client per rank,
# every rank in the graph exchange; the per-round losses must equal a 1-rank run's exactly. This
# checks correctness at a rank count far above the core count, not speed.
# usage: many_ranks.sh MPIEXEC MIRA_HPC RANKS
set -euo pipefail
mpiexec=$1 bin=$2 ranks=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--run.clients "$ranks" --run.rounds 2 --federation.sample_fraction 0.5 --federation.graph random
        --train.mode steps --train.local_steps 1 --train.batch_size 2 --lora.rank 2 --lora.targets c_attn
        --data.examples_per_client 4 --mira.lambda 20 --checkpoint.every 1 --log-level warn --run.threads 1)
"$mpiexec" -n 1 "$bin" train "${common[@]}" --run.output "$work/np1" >"$work/np1.log" 2>&1 || { cat "$work/np1.log"; exit 1; }
"$mpiexec" -n "$ranks" "$bin" train "${common[@]}" --run.output "$work/many" >"$work/many.log" 2>&1 ||
  { tail -50 "$work/many.log"; exit 1; }
python3 "$(dirname "$0")/compare_metrics.py" "$work/np1/metrics.jsonl" "$work/many/metrics.jsonl"
h5diff "$work/np1/checkpoints/ckpt-2.h5" "$work/many/checkpoints/ckpt-2.h5" /adapters /adapters
echo "np $ranks == np 1: metrics and final adapters identical"
