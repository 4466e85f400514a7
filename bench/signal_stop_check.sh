#!/usr/bin/env bash
# Does a CUDA training run stop on SIGUSR1 (exit code 3, "stopped by SIGUSR1")? On the lent H200 in
# session 4, tests/integration/resume.sh with --run.backend cuda did not end after the signal, while
# the same script passes with the bundle's mpirun on the CPU backend and on the CUDA emulator. This
# runs only the stop: two ranks sharing the GPU wait after round 1 (run.wait_for_signal_after_round),
# mpirun gets SIGUSR1, and the script reports the exit code within 30 s, or, if the ranks are still
# alive, each rank's state (/proc: status, wchan, kernel stack) and the log tail, then kills them.
# Exit 0: stopped; 77: no usable GPU (skipped); 1: a hang or another failure.
# usage: bench/signal_stop_check.sh MPIEXEC MIRA_HPC [BACKEND (cuda)]
set -uo pipefail
mpiexec=$1 bin=$2 backend=${3:-cuda}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$mpiexec" -n 2 "$bin" train --run.backend "$backend" --run.share_devices true --run.clients 4 --run.rounds 3 \
  --run.wait_for_signal_after_round 1 --train.mode steps --train.local_steps 1 --data.examples_per_client 8 \
  --train.batch_size 2 --lora.rank 4 --run.output "$work/out" >"$work/log" 2>&1 &
launcher=$!
for _ in $(seq 600); do  # up to 60 s until the ranks wait for the signal
  grep -q "waiting for a stop signal" "$work/log" && break
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "waiting for a stop signal" "$work/log"; then
  if grep -q "sees no usable GPU" "$work/log"; then  # a machine without a GPU: nothing to check
    echo "signal_stop_check: skipped: no usable GPU"
    exit 77
  fi
  echo "signal_stop_check: the run did not reach the wait"; tail -20 "$work/log"; kill -9 "$launcher" 2>/dev/null
  exit 1
fi
kill -USR1 "$launcher"
for _ in $(seq 300); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$launcher" 2>/dev/null; then
  echo "signal_stop_check: HANG: mpirun still alive 30 s after SIGUSR1 ($backend)"
  for pid in $(pgrep -f "$bin train"); do
    echo "== rank pid $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline | cut -c1-80)"
    grep -E "^(State|SigPnd|ShdPnd|SigBlk|SigCgt|Threads)" /proc/"$pid"/status
    echo "wchan: $(cat /proc/"$pid"/wchan 2>/dev/null)"
    head -12 /proc/"$pid"/stack 2>/dev/null
  done
  tail -20 "$work/log"
  kill -9 "$launcher" $(pgrep -f "$bin train") 2>/dev/null
  exit 1
fi
wait "$launcher"
rc=$?
tail -5 "$work/log"
if [ "$rc" -eq 3 ] && grep -q "stopped by SIGUSR1" "$work/log"; then
  echo "signal_stop_check: ok: exit 3 after SIGUSR1 ($backend)"
  exit 0
fi
echo "signal_stop_check: exit code $rc (expected 3) ($backend)"
exit 1
