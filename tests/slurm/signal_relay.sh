#!/usr/bin/env bash
# The job scripts' signal relay (jobs/mira-common.sh, mira_launch), without Slurm: a SIGTERM to the
# batch shell reaches an srun step as SIGTERM (srun forwards it and waits KillWait), but an mpirun
# step as SIGUSR1, because OpenMPI's mpirun takes SIGTERM as "abort": it SIGKILLs the ranks 1 s
# later and exits with 1, losing a stop checkpoint that takes longer. Checked twice:
#   1. with stand-in srun and mpirun commands that record the signal they get;
#   2. with the real mpirun and mira_hpc (2 ranks waiting after round 1): SIGTERM to the shell ->
#      exit code 3, "stopped by SIGUSR1", the checkpoint of round 1; a resume then completes.
# usage: signal_relay.sh MIRA_HPC MPIEXEC
set -euo pipefail
bin=$(realpath "$1") mpiexec=$2
repo=$(cd "$(dirname "$0")/../.." && pwd -P)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "---- $f" >&2; cat "$f" >&2; }; done; exit 1; }
for v in $(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC)_' || true); do unset "$v"; done

# wait_for FILE PATTERN: until FILE matches PATTERN (60 s at most).
wait_for() {
  for _ in $(seq 600); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "timed out waiting for /$2/ in $1"
}

# relay LAUNCHER NAME PATH_DIR ARGS...: runs `mira_launch ARGS` with MIRA_LAUNCHER=LAUNCHER and
# PATH_DIR first on PATH in a job-script-like shell (bash, set -euo pipefail, mira-common.sh
# sourced), sends that shell SIGTERM once NAME.ready exists, and leaves the launch's exit code in
# NAME.rc and the shell's output in NAME.log.
relay() {
  local launcher=$1 name=$2 dir=$3
  shift 3
  env MIRA_LAUNCHER="$launcher" PATH="$dir:$PATH" bash -c \
    'set -euo pipefail; . "$1/jobs/mira-common.sh"; rcfile=$2; shift 2; rc=0; mira_launch "$@" || rc=$?; echo "$rc" >"$rcfile"' \
    relay "$repo" "$work/$name.rc" "$@" >"$work/$name.log" 2>&1 &
  local shell=$!
  for _ in $(seq 600); do [ -e "$work/$name.ready" ] && break; sleep 0.1; done
  [ -e "$work/$name.ready" ] || fail "$name: the step never got ready"
  kill -TERM "$shell"
  wait "$shell" || fail "$name: the job shell itself failed"
}

# 1. Stand-ins on PATH: each records the first signal it gets, then exits with 3 like mira_hpc.
mkdir -p "$work/fake"
for l in srun mpirun; do
  cat >"$work/fake/$l" <<EOF
#!/usr/bin/env bash
trap 'echo USR1 >"$work/$l.got"; exit 3' USR1
trap 'echo TERM >"$work/$l.got"; exit 3' TERM
touch "$work/$l.ready"
while :; do sleep 0.1; done
EOF
  chmod +x "$work/fake/$l"
done
for l in srun mpirun; do
  relay "$l" "$l" "$work/fake" /bin/true
  [ "$(cat "$work/$l.rc")" = 3 ] || fail "$l stand-in: mira_launch returned $(cat "$work/$l.rc"), expected 3"
done
[ "$(cat "$work/srun.got")" = TERM ] || fail "srun got SIG$(cat "$work/srun.got") for the shell's SIGTERM, expected TERM"
[ "$(cat "$work/mpirun.got")" = USR1 ] || fail "mpirun got SIG$(cat "$work/mpirun.got") for the shell's SIGTERM, expected USR1"
grep -q "SIGTERM received: forwarding it to the job step (PID [0-9]*) as SIGUSR1" "$work/mpirun.log" ||
  fail "the relay log line for mpirun does not say SIGUSR1"
echo "ok: SIGTERM to the job shell reaches srun as TERM and mpirun as USR1"

# 2. The real mpirun (the tests' isolated launcher under the name mpirun) and mira_hpc.
mkdir -p "$work/real"
printf '#!/bin/sh\nexec %s "$@"\n' "$mpiexec" >"$work/real/mpirun"
chmod +x "$work/real/mpirun"
out=$work/run
args=(train --run.clients 4 --federation.sample_fraction 0.5 --train.mode steps --train.local_steps 2
      --train.batch_size 2 --lora.rank 2 --data.examples_per_client 8 --run.rounds 2 --run.backend cpu)
(
  # mira_launch's mpirun line: SLURM_NTASKS ranks, each bound to SLURM_CPUS_PER_TASK cores.
  export SLURM_NTASKS=2 SLURM_CPUS_PER_TASK=1
  # ready once round 1's checkpoint is written and the ranks wait for a signal
  (wait_for "$work/mira.log" "waiting for a stop signal after round 1" && touch "$work/mira.ready") &
  relay mpirun mira "$work/real" "$bin" "${args[@]}" --run.output "$out" --run.wait_for_signal_after_round 1
)
[ "$(cat "$work/mira.rc")" = 3 ] || fail "mira_hpc under mpirun: exit code $(cat "$work/mira.rc") after SIGTERM to the shell, expected 3"
grep -q "stopped by SIGUSR1 after 1 completed round(s); checkpoint $out/checkpoints/ckpt-1.h5" "$work/mira.log" ||
  fail "mira_hpc did not report its stop after round 1"
[ -f "$out/checkpoints/ckpt-1.h5" ] || fail "no ckpt-1.h5"
"$mpiexec" -n 2 "$bin" "${args[@]}" --run.output "$out" --resume auto >"$work/resumed.log" 2>&1 || fail "the resume failed"
grep -q "continuing at round 2" "$work/resumed.log" || fail "the resume did not continue at round 2"
echo "ok: SIGTERM to the job shell with MIRA_LAUNCHER=mpirun: mira_hpc stopped with exit 3 after its checkpoint"
