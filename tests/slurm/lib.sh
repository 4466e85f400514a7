# Shared helpers of the Slurm tests (sourced): a private one-node Slurm (scripts/slurm-local.sh)
# that is stopped on exit, polling with a deadline, and fields of `scontrol show job`.
# Tests exit 77 (ctest SKIP_RETURN_CODE) with a reason when Slurm cannot be used here.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# slurm_up: start a private cluster under a fresh temporary directory ($work/cluster) and make sure
# it is stopped (and $work removed) when the test exits, whatever the outcome.
slurm_up() {
  [ "$(id -u)" -eq 0 ] || skip "the local Slurm needs root (slurmd)"
  local t
  for t in munged slurmctld slurmd sbatch scontrol; do
    command -v "$t" >/dev/null || skip "'$t' is not installed (scripts/setup.sh installs Slurm unless MIRA_SETUP_SLURM=0)"
  done
  # Nothing from an enclosing Slurm job (CI running inside an allocation) may leak into ours.
  local v
  for v in $(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC)_' || true); do unset "$v"; done
  work=$(mktemp -d /tmp/mira-slurm-test.XXXXXX)
  trap slurm_down EXIT
  "$repo/scripts/slurm-local.sh" start "$work/cluster" --owner $$
  export SLURM_CONF="$work/cluster/slurm.conf"
}

slurm_down() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    local f
    for f in "$work"/submit/slurm-*.out; do
      [ -f "$f" ] && { echo "---- job log $f" >&2; cat "$f" >&2; }
    done
    for f in "$work"/cluster/log/slurmctld.log "$work"/cluster/log/slurmd.log; do
      [ -f "$f" ] && { echo "---- $f (last 30 lines)" >&2; tail -n 30 "$f" >&2; }
    done
  fi
  "$repo/scripts/slurm-local.sh" stop "$work/cluster" || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
  exit "$rc"
}

# wait_until SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds; fail after SECONDS.
wait_until() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@"; do
    [ $((SECONDS - start)) -lt "$limit" ] || fail "timed out after $limit s waiting for: $what"
    sleep 0.2
  done
}

# job_field JOBID FIELD: one field of `scontrol show job` (e.g. JobState, Restarts, ExitCode).
job_field() {
  scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# round_count METRICS: the number of per-round records in a metrics.jsonl.
round_count() { grep -c '"type":"round"' "$1" || true; }
