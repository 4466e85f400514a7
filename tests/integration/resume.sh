#!/usr/bin/env bash
# A run stopped by SIGUSR1 and resumed (--resume auto) on another rank count gives bitwise the same
# per-round losses and final adapters as an uninterrupted run (DESIGN.md, Checkpoint; issue 6).
#   boundary: the stop arrives while the ranks wait after round 3 (run.wait_for_signal_after_round)
#   midround: the stop arrives during training, after the first checkpoint: the unfinished round is
#             abandoned and repeated on resume
# usage: resume.sh MPIEXEC MIRA_HPC boundary|midround ALGORITHM [NP_STRAIGHT NP_STOPPED NP_RESUMED]
#        (rank counts of the uninterrupted, the stopped and the resumed run; default 2 2 3)
set -euo pipefail
mpiexec=$1 bin=$2 mode=$3 algorithm=$4
np_straight=${5:-2} np_stopped=${6:-2} np_resumed=${7:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--run.algorithm "$algorithm" --run.clients 8 --federation.sample_fraction 0.5 --train.batch_size 4
        --lora.rank 4 --lora.dropout 0.1 --optim.lr 1e-3 --log-level warn)
if [ "$algorithm" = mira ]; then common+=(--mira.lambda 20); fi
# Extra options from the environment (e.g. MIRA_TEST_EXTRA="--optim.keep_state true").
read -r -a extra_opts <<< "${MIRA_TEST_EXTRA:-}"
common+=("${extra_opts[@]}")
if [ "$mode" = boundary ]; then
  common+=(--run.rounds 6 --train.mode steps --train.local_steps 2 --data.examples_per_client 12)
else
  common+=(--run.rounds 10 --train.local_epochs 2 --data.examples_per_client 40)
fi

"$mpiexec" -n "$np_straight" "$bin" train "${common[@]}" --run.output "$work/straight" >"$work/straight.log" 2>&1 ||
  { cat "$work/straight.log"; exit 1; }

extra=()
[ "$mode" = boundary ] && extra=(--run.wait_for_signal_after_round 3)
first=$([ "$mode" = boundary ] && echo 3 || echo 1)
"$mpiexec" -n "$np_stopped" "$bin" train "${common[@]}" "${extra[@]}" --run.output "$work/stopped" >"$work/stopped.log" 2>&1 &
launcher=$!
for _ in $(seq 600); do  # up to 60 s for the first checkpoint
  [ -e "$work/stopped/checkpoints/ckpt-$first.h5" ] && break
  sleep 0.1
done
[ -e "$work/stopped/checkpoints/ckpt-$first.h5" ] || { echo "no checkpoint ckpt-$first.h5"; cat "$work/stopped.log"; exit 1; }
kill -USR1 "$launcher"  # mpirun forwards SIGUSR1 to every rank
set +e
wait "$launcher"
rc=$?
set -e
if [ "$rc" -ne 3 ]; then echo "stopped run: exit code $rc, expected 3"; cat "$work/stopped.log"; exit 1; fi
grep -q "stopped by SIGUSR1" "$work/stopped.log" || { echo "no stop message"; cat "$work/stopped.log"; exit 1; }

"$mpiexec" -n "$np_resumed" "$bin" train "${common[@]}" --run.output "$work/stopped" --resume auto >"$work/resumed.log" 2>&1 ||
  { cat "$work/resumed.log"; exit 1; }
grep -q '"type":"resume"' "$work/stopped/metrics.jsonl" || { echo "did not resume"; cat "$work/resumed.log"; exit 1; }
python3 "$(dirname "$0")/compare_metrics.py" "$work/straight/metrics.jsonl" "$work/stopped/metrics.jsonl"
last=$(ls "$work/straight/checkpoints" | grep -E '^ckpt-[0-9]+\.h5$' | sort -t- -k2 -n | tail -1)
h5diff "$work/straight/checkpoints/$last" "$work/stopped/checkpoints/$last" /adapters /adapters
echo "final adapters identical ($last)"
