#!/usr/bin/env bash
# A stop signal soon after a resume writes the state it stopped with into this run's checkpoint
# directory, and the stop message names a file that exists:
#   1. `--resume A/checkpoints/ckpt-2.h5 --run.output B` (a new run directory), SIGUSR1 during
#      round 3: exit 3, B/checkpoints/ckpt-2.h5 written and `latest` names it; `--resume auto` in B
#      then continues at round 3 (not from round 0), and rounds 1-2 of A + rounds 3-4 of B equal an
#      uninterrupted 4-round run, bitwise (per-round losses, final adapters);
#   2. a fresh run stopped during round 1: exit 3, no checkpoint and no ckpt-0.h5 named.
# The rounds are long (many local steps) so that the signal, sent as soon as the log shows the
# round started, arrives before it ends.
# usage: stop_after_resume.sh MPIEXEC MIRA_HPC
set -euo pipefail
mpiexec=$1 bin=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
here=$(cd "$(dirname "$0")" && pwd)
common=(--run.clients 4 --federation.sample_fraction 0.5 --train.mode steps --train.local_steps 500
        --train.batch_size 2 --lora.rank 2 --data.examples_per_client 8)
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "---- $f"; cat "$f"; done; exit 1; }

# stopped NAME PATTERN ARGS...: runs mira_hpc in the background, sends SIGUSR1 to mpiexec once the
# log matches PATTERN, expects exit code 3.
stopped() {
  local name=$1 pattern=$2
  shift 2
  "$mpiexec" -n 2 "$bin" train "${common[@]}" "$@" >"$work/$name.log" 2>&1 &
  local launcher=$! rc=0
  for _ in $(seq 1200); do  # up to 60 s
    grep -q -- "$pattern" "$work/$name.log" && break
    sleep 0.05
  done
  grep -q -- "$pattern" "$work/$name.log" || fail "$name: the log never showed /$pattern/"
  kill -USR1 "$launcher"
  wait "$launcher" || rc=$?
  [ "$rc" -eq 3 ] || fail "$name: exit code $rc, expected 3"
}

"$mpiexec" -n 2 "$bin" train "${common[@]}" --run.rounds 4 --run.output "$work/straight" >"$work/straight.log" 2>&1 ||
  fail "uninterrupted run failed"
"$mpiexec" -n 2 "$bin" train "${common[@]}" --run.rounds 2 --run.output "$work/a" >"$work/a.log" 2>&1 ||
  fail "run A failed"

# 1. Resumed from A's file into B, stopped in round 3.
stopped b "resume: .* continuing at round 3" --run.rounds 4 --run.output "$work/b" --resume "$work/a/checkpoints/ckpt-2.h5"
grep -q "stopped by SIGUSR1 after 2 completed round(s); checkpoint $work/b/checkpoints/ckpt-2.h5; resubmit" \
  "$work/b.log" || fail "b: the stop message does not name b/checkpoints/ckpt-2.h5"
[ -f "$work/b/checkpoints/ckpt-2.h5" ] || fail "b: ckpt-2.h5 was not written"
[ "$(readlink "$work/b/checkpoints/latest")" = ckpt-2.h5 ] || fail "b: checkpoints/latest does not name ckpt-2.h5"
"$mpiexec" -n 2 "$bin" train "${common[@]}" --run.rounds 4 --run.output "$work/b" --resume auto >"$work/b2.log" 2>&1 ||
  fail "b: --resume auto failed"
grep -q "resume: $work/b/checkpoints/ckpt-2.h5 holds 2 completed round(s); continuing at round 3" "$work/b2.log" ||
  fail "b: --resume auto did not continue at round 3"
{ grep '"type":"round"' "$work/a/metrics.jsonl"; grep '"type":"round"' "$work/b/metrics.jsonl"; } >"$work/ab.jsonl"
python3 "$here/compare_metrics.py" "$work/straight/metrics.jsonl" "$work/ab.jsonl" || fail "rounds differ"
h5diff "$work/straight/checkpoints/ckpt-4.h5" "$work/b/checkpoints/ckpt-4.h5" /adapters /adapters ||
  fail "final adapters differ from the uninterrupted run"
echo "ok: stop after --resume PATH wrote b/checkpoints/ckpt-2.h5; --resume auto continued bitwise"

# 2. A fresh run stopped in round 1.
stopped fresh "train: mira, .* rounds 1\.\.4" --run.rounds 4 --run.output "$work/fresh"
grep -q "stopped by SIGUSR1 before round 1 completed; no checkpoint written" "$work/fresh.log" ||
  fail "fresh: no 'no checkpoint written' message"
if grep -q "ckpt-0" "$work/fresh.log"; then fail "fresh: the log names ckpt-0"; fi
if ls "$work/fresh/checkpoints" | grep -q .; then fail "fresh: checkpoints/ is not empty: $(ls "$work/fresh/checkpoints")"; fi
echo "ok: a stop before round 1 names no checkpoint"
