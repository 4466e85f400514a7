#!/usr/bin/env bash
# Slurm test: submits jobs/mira-cpu.sbatch, as users do, with `sbatch --wait` to a private one-node
# Slurm (scripts/slurm-local.sh) and checks what the job produced: exit code 0, the output directory
# (the per-job default runs/mira-cpu-<jobid> under the submission directory, or the one given), a
# metrics.jsonl whose every round equals a direct mpiexec run of the same config, the final
# checkpoint with the `latest` link, and adapters equal to the direct run's (h5diff).
# Two launches, 2 ranks x 1 CPU each (the CI machine has 2 cores; more ranks than cores makes MPI's
# busy-polling ranks crawl): srun --mpi=pmix (the default), and mpirun inside the allocation
# (MIRA_LAUNCHER=mpirun).
# usage: cpu_job.sh MIRA_HPC MPIEXEC      (as root; exits 77 = skipped without Slurm)
set -euo pipefail
bin=$(realpath "$1") mpiexec=$2
. "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
config=$repo/configs/slurm-test.ini
rounds=4   # run.rounds in configs/slurm-test.ini

slurm_up
mkdir -p "$work/submit"
cd "$work/submit"

# The reference: the same configuration run directly, 1 rank (results do not depend on the rank count).
"$mpiexec" -n 1 "$bin" train --config "$config" --run.backend cpu --run.output "$work/ref" \
  --log-level warn >"$work/ref.log" 2>&1 || { cat "$work/ref.log"; fail "reference run failed"; }

# check_run DIR JOBID: the job's output equals the reference.
check_run() {
  local dir=$1 id=$2
  [ -f "$dir/metrics.jsonl" ] || fail "job $id: no $dir/metrics.jsonl"
  [ "$(round_count "$dir/metrics.jsonl")" = "$rounds" ] || fail "job $id: expected $rounds round records in $dir/metrics.jsonl"
  python3 "$repo/tests/integration/compare_metrics.py" "$work/ref/metrics.jsonl" "$dir/metrics.jsonl" ||
    fail "job $id: metrics differ from the direct run"
  [ -f "$dir/checkpoints/ckpt-$rounds.h5" ] || fail "job $id: no final checkpoint ckpt-$rounds.h5"
  [ "$(readlink "$dir/checkpoints/latest")" = "ckpt-$rounds.h5" ] || fail "job $id: checkpoints/latest does not name ckpt-$rounds.h5"
  h5diff "$work/ref/checkpoints/ckpt-$rounds.h5" "$dir/checkpoints/ckpt-$rounds.h5" /adapters ||
    fail "job $id: final adapters differ from the direct run"
  grep -q "done: $dir/metrics.jsonl" "slurm-mira-cpu-$id.out" || fail "job $id: the log does not report completion"
}

# 1. srun --mpi=pmix, 2 ranks x 1 CPU, default output directory.
id=$(MIRA_HPC=$bin timeout 120 sbatch --parsable --wait --ntasks=2 --cpus-per-task=1 \
  "$repo/jobs/mira-cpu.sbatch" "$config") || fail "sbatch --wait (srun launcher) failed: exit code $?"
echo "job $id (srun, 2 ranks) finished"
[ "$(job_field "$id" JobState)" = COMPLETED ] || fail "job $id: state $(job_field "$id" JobState)"
check_run "$work/submit/runs/mira-cpu-$id" "$id"
grep -q "2 ranks x 1 CPUs, launcher srun" "slurm-mira-cpu-$id.out" || fail "job $id: log lacks the launch line"
grep -q "threads:  1 per rank (from SLURM_CPUS_PER_TASK" "slurm-mira-cpu-$id.out" ||
  fail "job $id: mira_hpc did not take its threads from SLURM_CPUS_PER_TASK"

# 2. mpirun inside the allocation, 2 ranks x 1 CPU, output directory given.
id=$(MIRA_HPC=$bin MIRA_LAUNCHER=mpirun timeout 120 sbatch --parsable --wait --ntasks=2 --cpus-per-task=1 \
  "$repo/jobs/mira-cpu.sbatch" "$config" "$work/out-mpirun") ||
  fail "sbatch --wait (mpirun launcher) failed: exit code $?"
echo "job $id (mpirun, 2 ranks) finished"
check_run "$work/out-mpirun" "$id"
grep -q "2 ranks x 1 CPUs, launcher mpirun" "slurm-mira-cpu-$id.out" || fail "job $id: log lacks the launch line"
[ ! -e "$work/submit/runs/mira-cpu-$id" ] || fail "job $id: wrote the default directory although one was given"
echo "PASS: CPU job script under Slurm (srun and mpirun launchers) matches a direct run"
