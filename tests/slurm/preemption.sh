#!/usr/bin/env bash
# Slurm test: preemption and requeue as Slurm really does it, end to end. Submits
# jobs/mira-cpu.sbatch (2 ranks) with run.wait_for_signal_after_round = 2, so the ranks finish round
# 2, write its checkpoint and wait for a signal (deterministic: no race with the training). Once
# ckpt-2.h5 exists, the test sends USR1 to the batch shell only (`scancel --batch --signal=USR1`,
# what `--signal=B:USR1@T` does before a time limit). The job script must forward it to the ranks,
# mira_hpc must stop with exit code 3, and the script must requeue the job; the restarted job
# resumes from checkpoints/latest (--run.resume auto) and completes. The test then checks
# Restarts = 1, state COMPLETED with exit code 0, both starts in the appended log, and that the
# metrics of every round and the final adapters equal an uninterrupted direct run's.
#
# Slurm holds a requeued batch job for about two minutes (BeginTime) before it may start again,
# time for the previous run's step daemons to clean up. The test shortens that hold: it waits until
# the previous step's daemon has removed its PMIx socket from the spool directory, then sets the
# job's StartTime to now (an operator can do the same: scontrol update JobId=N StartTime=now).
# usage: preemption.sh MIRA_HPC MPIEXEC      (as root; exits 77 = skipped without Slurm)
set -euo pipefail
bin=$(realpath "$1") mpiexec=$2
. "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
config=$repo/configs/slurm-test.ini
rounds=4 stop_after=2   # run.rounds in configs/slurm-test.ini; the round after which the job is stopped

help=$("$bin" --help 2>&1 || true)
grep -q -- "--run.wait_for_signal_after_round" <<<"$help" ||
  skip "this mira_hpc has no run.wait_for_signal_after_round (checkpoint/resume not built in)"
slurm_up
mkdir -p "$work/submit"
cd "$work/submit"

# The uninterrupted reference, run directly.
"$mpiexec" -n 2 "$bin" train --config "$config" --run.backend cpu --run.output "$work/ref" \
  --log-level warn >"$work/ref.log" 2>&1 || { cat "$work/ref.log"; fail "reference run failed"; }

out=$work/out
id=$(MIRA_HPC=$bin sbatch --parsable --ntasks=2 --cpus-per-task=1 "$repo/jobs/mira-cpu.sbatch" "$config" "$out" \
  --run.wait_for_signal_after_round "$stop_after")
log=$work/submit/slurm-mira-cpu-$id.out
echo "job $id submitted"

# Round 2's checkpoint exists (written to a temporary name, then renamed): the ranks now wait.
checkpoint_written() { [ -f "$out/checkpoints/ckpt-$stop_after.h5" ]; }
job_not_done() {
  case $(job_field "$id" JobState) in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) return 1 ;; esac
}
wait_until 60 "ckpt-$stop_after.h5 of job $id" bash -c "[ -f '$out/checkpoints/ckpt-$stop_after.h5' ] || ! scontrol show job $id | grep -qE 'JobState=(RUNNING|PENDING|CONFIGURING)'"
checkpoint_written || fail "job $id ended ($(job_field "$id" JobState)) before writing ckpt-$stop_after.h5"
job_not_done || fail "job $id ended ($(job_field "$id" JobState)) instead of waiting for a signal after round $stop_after"
[ "$(job_field "$id" Restarts)" = 0 ] || fail "job $id restarted before it was signalled"

echo "ckpt-$stop_after.h5 written; sending USR1 to the batch shell of job $id"
scancel --batch --signal=USR1 "$id"

# Until the job has restarted and completed: release the requeue hold once the old step is gone.
released=0
finished() {
  local state restarts
  state=$(job_field "$id" JobState) restarts=$(job_field "$id" Restarts)
  case $state in
    COMPLETED) [ "$restarts" -ge 1 ] && return 0
               fail "job $id completed without a restart (Restarts=$restarts): the signal did not stop it" ;;
    FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) fail "job $id ended in state $state (Restarts=$restarts)" ;;
    PENDING)
      if [ "$released" = 0 ] && [ "$restarts" -ge 1 ] && [ "$(job_field "$id" Reason)" = BeginTime ] &&
         ! compgen -G "$work/cluster/spool/stepd.slurm.pmix.$id.*" >/dev/null; then
        scontrol update JobId="$id" StartTime=now
        released=1
        echo "job $id requeued (Restarts=$restarts); hold released"
      fi ;;
  esac
  return 1
}
wait_until 90 "job $id to restart and complete" finished

[ "$(job_field "$id" Restarts)" = 1 ] || fail "job $id: Restarts=$(job_field "$id" Restarts), expected 1"
[ "$(job_field "$id" ExitCode)" = 0:0 ] || fail "job $id: ExitCode=$(job_field "$id" ExitCode), expected 0:0"
grep -q "SIGUSR1 received: forwarding it to the job step" "$log" || fail "the job script did not relay USR1"
grep -q "stopped by SIGUSR1 after $stop_after completed round" "$log" || fail "mira_hpc did not report its stop after round $stop_after"
grep -q "requeueing job $id" "$log" || fail "the job script did not requeue the job"
grep -q "start (restart 0)" "$log" && grep -q "start (restart 1)" "$log" ||
  fail "the log lacks one of the two starts (--open-mode=append keeps both)"
grep -q "done: $out/metrics.jsonl" "$log" || fail "the restarted job did not report completion"

# The resumed run equals the uninterrupted one: every round's metrics and the final adapters.
[ "$(round_count "$out/metrics.jsonl")" = "$rounds" ] || fail "expected $rounds round records in $out/metrics.jsonl"
python3 "$repo/tests/integration/compare_metrics.py" "$work/ref/metrics.jsonl" "$out/metrics.jsonl" ||
  fail "metrics of the preempted and resumed run differ from the uninterrupted run"
[ "$(readlink "$out/checkpoints/latest")" = "ckpt-$rounds.h5" ] || fail "checkpoints/latest does not name ckpt-$rounds.h5"
h5diff "$work/ref/checkpoints/ckpt-$rounds.h5" "$out/checkpoints/ckpt-$rounds.h5" /adapters ||
  fail "final adapters of the preempted and resumed run differ from the uninterrupted run"
echo "PASS: USR1 to the batch shell -> checkpoint, exit 3, requeue, resume; results equal an uninterrupted run"
