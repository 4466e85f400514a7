#!/usr/bin/env bash
# Smoke test of bench/gpu_session.sh, the one command a rare GPU session runs (docs/cuda.md): on this
# build tree it must run every step to its end and exit 0. Without a usable GPU each step skips
# (exit 0, or 77 for the end-to-end check); with one they run for real. Checks that summary.txt has
# one line per step plus the total, that no step failed or was cut, and that env.txt was written.
# usage: gpu_session_smoke.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=$1 build=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bash "$src/bench/gpu_session.sh" --bin "$build" --out "$out" --budget 400 >"$out/session.log" 2>&1
rc=$?
cat "$out/summary.txt"
fail=0
[ "$rc" -eq 0 ] || { echo "FAIL: gpu_session.sh exited $rc"; tail -30 "$out/session.log"; fail=1; }
steps="test_gpu train_cpu_vs_cuda backend_choice gpu_mpi_nccl_np1 gpu_mpi_staged_np1 gpu_mpi_staged_np2
       gpu_mpi_staged_np3 gpu_mpi_staged_np4 kernels train_gpu exchange_device signal_stop"
for s in $steps; do
  grep -qE "^$s: exit (0|77 \(skipped: no GPU\)) in [0-9]+ s$" "$out/summary.txt" ||
    { echo "FAIL: no clean summary line for step $s"; fail=1; }
done
grep -qE "^total [0-9]+ s of 400$" "$out/summary.txt" || { echo "FAIL: no total line"; fail=1; }
[ -s "$out/env.txt" ] || { echo "FAIL: env.txt is missing or empty"; fail=1; }
exit $fail
