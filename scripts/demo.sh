#!/usr/bin/env bash
# The README's demo command: set-up, build, then the embedded default job (configs/demo.ini) on 4
# MPI ranks: a tiny base model is pretrained once on a generic corpus (cached in runs/demo/base),
# then the same 20 synthetic tasks are trained three ways - mira (task graph), fedit, local - and a
# per-client table of the final test losses is printed.
#   scripts/demo.sh            # everything
# Environment: MIRA_PRESET (build preset, default release), MIRA_RANKS (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
preset=${MIRA_PRESET:-release}
ranks=${MIRA_RANKS:-4}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
bin=build/$preset/mira_hpc
config=configs/demo.ini

# mpirun as root (containers, CI) needs these; --oversubscribe lets 4 ranks share 2 cores; one
# thread per rank then, so ranks do not fight over cores.
mpirun_flags=(-n "$ranks" --oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && mpirun_flags+=(--allow-run-as-root)
export OMP_NUM_THREADS=1
cores=$(nproc)
threads=$(( cores / ranks )); [ "$threads" -ge 1 ] || threads=1

if [ ! -f runs/demo/base/model.safetensors ]; then
  echo "demo: pretraining the tiny base model on the generic corpus (once; cached in runs/demo/base)"
  "$bin" pretrain --config "$config" --model.path "" --run.output runs/demo --run.threads "$cores"
fi
rm -rf runs/demo/mira runs/demo/fedit runs/demo/local
start=$(date +%s)
for alg in mira fedit local; do
  echo "demo: training with run.algorithm = $alg on $ranks ranks"
  mpirun "${mpirun_flags[@]}" "$bin" train --config "$config" --run.algorithm "$alg" \
    --run.output "runs/demo/$alg" --run.threads "$threads" --log-level warn
done
echo "demo: the three runs took $(( $(date +%s) - start )) s"
python3 scripts/compare_runs.py mira=runs/demo/mira fedit=runs/demo/fedit local=runs/demo/local
