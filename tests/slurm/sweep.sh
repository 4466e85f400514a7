#!/usr/bin/env bash
# Slurm test: the GPU job scripts' logic on a CPU-only local Slurm (their GPU request switched off
# on the sbatch command line with --gpus-per-task=0, CPU backend).
# 1. jobs/mira-sweep.sbatch as a job array over a small grid (MIRA_SWEEP_ALGORITHMS="mira fedit",
#    MIRA_SWEEP_LAMBDAS="0.5 2", MIRA_SWEEP_SEEDS=3: tasks 0-2), `sbatch --wait`: one directory per
#    task named <task>-<algorithm>[-lambda<L>]-seed<S> under runs/mira-sweep-<array job id>, each
#    with the metrics of a direct run with the same algorithm, lambda and seed; a task id beyond the
#    grid is refused with exit code 2.
# 2. jobs/mira.sbatch (the README's `sbatch jobs/mira.sbatch configs/x.ini`), 2 ranks.
# usage: sweep.sh MIRA_HPC MPIEXEC      (as root; exits 77 = skipped without Slurm)
set -euo pipefail
bin=$(realpath "$1") mpiexec=$2
. "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
config=$repo/configs/slurm-test.ini
short=(--run.rounds 2 --run.backend cpu)   # 2 rounds are enough to tell the grid points apart
no_gpu=(--gpus-per-task=0 --ntasks-per-node=1 --cpus-per-task=1)

slurm_up
mkdir -p "$work/submit"
cd "$work/submit"

# 1. The array.
export MIRA_SWEEP_ALGORITHMS="mira fedit" MIRA_SWEEP_LAMBDAS="0.5 2" MIRA_SWEEP_SEEDS=3
id=$(MIRA_HPC=$bin timeout 120 sbatch --parsable --wait "${no_gpu[@]}" --array=0-3 \
  "$repo/jobs/mira-sweep.sbatch" "$config" "${short[@]}") && fail "array job $id: expected a failure (task 3 is beyond the grid)"
id=${id%%;*}
echo "array job $id finished"
expected=("0-mira-lambda0.5-seed3" "1-mira-lambda2-seed3" "2-fedit-seed3")
[ "$(cd "$work/submit/runs/mira-sweep-$id" && ls | sort | tr '\n' ' ')" = "${expected[*]} " ] ||
  fail "array job $id: task directories are: $(ls "$work/submit/runs/mira-sweep-$id" | tr '\n' ' ')"
for t in 0 1 2; do
  [ "$(job_field "${id}_$t" JobState)" = COMPLETED ] || fail "task $t: state $(job_field "${id}_$t" JobState)"
done
[ "$(job_field "${id}_3" ExitCode)" = 2:0 ] || fail "task 3 (beyond the grid): ExitCode $(job_field "${id}_3" ExitCode), expected 2:0"
grep -q "array task 3 is beyond the grid of 3 combinations" "slurm-mira-sweep-${id}_3.out" || fail "task 3: no message"
i=0
for args in "--run.algorithm mira --mira.lambda 0.5" "--run.algorithm mira --mira.lambda 2" "--run.algorithm fedit"; do
  # shellcheck disable=SC2086
  "$mpiexec" -n 1 "$bin" train --config "$config" "${short[@]}" $args --run.seed 3 --run.output "$work/ref$i" \
    --log-level warn >"$work/ref$i.log" 2>&1 || { cat "$work/ref$i.log"; fail "reference run $i failed"; }
  python3 "$repo/tests/integration/compare_metrics.py" "$work/ref$i/metrics.jsonl" \
    "$work/submit/runs/mira-sweep-$id/${expected[$i]}/metrics.jsonl" || fail "task $i differs from a direct run with $args"
  i=$((i + 1))
done
# The grid points really differ (else the comparison above proves little).
! python3 "$repo/tests/integration/compare_metrics.py" "$work/ref0/metrics.jsonl" "$work/ref1/metrics.jsonl" >/dev/null 2>&1 ||
  fail "lambda 0.5 and 2 gave identical metrics"

# 2. The single-node GPU script with its GPU request switched off.
id=$(MIRA_HPC=$bin timeout 120 sbatch --parsable --wait --gpus-per-task=0 --ntasks-per-node=2 --cpus-per-task=1 \
  "$repo/jobs/mira.sbatch" "$config" "${short[@]}") || fail "jobs/mira.sbatch: exit code $?"
"$mpiexec" -n 1 "$bin" train --config "$config" "${short[@]}" --run.output "$work/ref-config" --log-level warn \
  >"$work/ref-config.log" 2>&1 || { cat "$work/ref-config.log"; fail "reference run of the config failed"; }
python3 "$repo/tests/integration/compare_metrics.py" "$work/ref-config/metrics.jsonl" "$work/submit/runs/mira-$id/metrics.jsonl" ||
  fail "jobs/mira.sbatch: metrics differ from a direct run"
echo "PASS: sweep array (grid, directories, results) and jobs/mira.sbatch under Slurm"
