#!/usr/bin/env bash
# An existing <run.output>/checkpoints that the user may not write into is refused at start-up, on
# every rank: exit code 2, one line naming the directory and the OS reason, printed once, and no
# round trained (not an HDF5 "internal error" from H5Fcreate after round 1). Root may write
# anywhere, so as root the run is made as user nobody (runuser); skipped (77) when that is not
# possible.
# usage: checkpoint_dir_unwritable.sh MPIEXEC MIRA_HPC
set -uo pipefail
mpiexec=$1 bin=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/run/checkpoints" "$work/tmp"
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  command -v runuser >/dev/null && id nobody >/dev/null 2>&1 || { echo "SKIPPED: needs runuser and user nobody"; exit 77; }
  chown nobody "$work/run" "$work/tmp"   # the run directory is nobody's, checkpoints/ stays root's (755)
  as_user=(runuser -u nobody --)
  # nobody must reach the binary and the launcher
  "${as_user[@]}" test -x "$bin" -a -x "$mpiexec" || { echo "SKIPPED: user nobody cannot execute $bin or $mpiexec"; exit 77; }
else
  chmod 555 "$work/run/checkpoints"
fi
# The tests' MPI session directories belong to the build tree's owner: nobody's mpiexec uses its own.
"${as_user[@]}" env -u MIRA_MPI_SESSIONS HOME="$work/tmp" TMPDIR="$work/tmp" \
  "$mpiexec" -n 2 "$bin" train --run.clients 4 --run.rounds 2 --train.mode steps --train.local_steps 1 \
  --train.batch_size 2 --lora.rank 2 --data.examples_per_client 4 --run.output "$work/run" >"$work/out.log" 2>&1
rc=$?
fail() { echo "FAIL: $*"; cat "$work/out.log"; exit 1; }
[ "$rc" -eq 2 ] || fail "exit code $rc, expected 2"
n=$(grep -c "^mira_hpc: error: checkpoint directory $work/run/checkpoints is not writable: Permission denied" "$work/out.log")
[ "$n" -eq 1 ] || fail "the refusal was printed $n times, expected once"
if grep -q "internal error\|round 1/" "$work/out.log"; then fail "a round ran or an internal error was reported"; fi
echo "ok: $(grep '^mira_hpc: error:' "$work/out.log")"
