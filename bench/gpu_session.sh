#!/usr/bin/env bash
# The one device call of a GPU session (docs/cuda.md, "Benchmarks on a GPU"): the GPU tests and the
# GPU benchmarks in order of importance, each under a time limit taken from one overall budget (the
# device tool stops a command after 600 s), every output written into $OUT (the device tool's
# output folder; default /tmp/mira-gpu-session):
#   env.txt                      nvidia-smi, glibc, Python + torch/transformers/peft versions
#   test_gpu.txt                 test_gpu: every CUDA op and a training step vs the CPU backend
#   train_cpu_vs_cuda.txt        mira_hpc train on run.backend = cpu and cuda, losses compared
#   backend_choice.txt           --backend cuda | auto take the GPU after the start-up check
#   gpu_mpi_nccl_np1.txt         NcclAdapterExchange on one rank (tests/gpu/mpi)
#   gpu_mpi_staged_np{1..4}.txt HostStagedAdapterExchange, ranks sharing the GPU
#   kernels.jsonl / .log         bench/run.sh kernels            (JSON lines / human text)
#   train_gpu.jsonl / .log       bench/run.sh train_gpu          (ours vs torch+peft, MFU)
#   gpu_mpi_device_aggregate_np1.txt  eq. (8) / FedIT kernels on the device vs the CPU (tests/gpu/mpi)
#   profile.json / profile.txt   MIRA_PROFILE=1 train_gpu_main: per backend op, each op fenced
#   epilogue_ab.jsonl            train_gpu_main with MIRA_CUDA_EPILOGUES=1, 0, 1, 0 (tokens/s each)
#   ncu.csv, ncu_top.txt         one step under Nsight Compute, per kernel (bench/ncu_top.py; skipped
#                                with exit 77 where the machine has no ncu)
#   exchange_device.jsonl / .log bench/run.sh exchange_device    (NCCL / staged / host MPI)
#   signal_stop.txt              bench/signal_stop_check.sh: a cuda run stops on SIGUSR1 (or where it hangs)
#   summary.txt                  one line per step: exit code (124 = cut by its limit), seconds
# and a digest of all of it on stdout at the end (the device tool returns only a few files).
# usage: bench/gpu_session.sh [--budget 570] [--bin DIR] [--out DIR]
# --bin: the folder holding mira_hpc, test_gpu, test_gpu_mpi_*, bench_kernels, train_gpu_main and
# bench_exchange_device; default $MIRA_BUNDLE_BIN (the unpacked binaries) after sourcing .bundle/env.sh (scripts/device-bundle.sh
# --gpu-session), else ${MIRA_BUILD_DIR:-build/ci} (a build tree: binaries at the top and in bench/).
# The peer's Python: $MIRA_PY, else /root/mira-venv/bin/python when present, else python3.
# Exit code 0 when every step ran to its end with exit code 0 (or 77: skipped, no GPU), else 1
# (summary.txt says which).
# On a machine without a GPU every step runs and skips (tests print SKIPPED, benches "skipped").
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
budget=570 bin="" out=${OUT:-/tmp/mira-gpu-session}
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "bench/gpu_session.sh: $1 needs a value" >&2; exit 2; }
  case $1 in
    --budget) budget=$2 ;; --bin) bin=$2 ;; --out) out=$2 ;;
    *) echo "bench/gpu_session.sh: unknown option $1 (allowed: --budget --bin --out)" >&2; exit 2 ;;
  esac
  shift 2
done
mkdir -p "$out"
if [ -z "$bin" ] && [ -f "$root/.bundle/env.sh" ]; then
  # shellcheck disable=SC1091
  source "$root/.bundle/env.sh"
  bin=$MIRA_BUNDLE_BIN
fi
if [ -z "$bin" ]; then
  bin=${MIRA_BUILD_DIR:-build/ci}
  case $bin in /*) ;; *) bin=$root/$bin ;; esac
fi
bin=$(cd "$bin" && pwd) || { echo "bench/gpu_session.sh: no folder $bin" >&2; exit 2; }
export MIRA_BUILD_DIR=$bin  # bench/lib.sh looks in $MIRA_BUILD_DIR/bench/ and $MIRA_BUILD_DIR/
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
if [ -z "${MIRA_PY:-}" ]; then
  if [ -x /root/mira-venv/bin/python ]; then MIRA_PY=/root/mira-venv/bin/python; else MIRA_PY=$(command -v python3 || echo python3); fi
fi
export MIRA_PY
find_bin() {  # a binary in $bin or $bin/bench
  if [ -x "$bin/$1" ]; then echo "$bin/$1"; elif [ -x "$bin/bench/$1" ]; then echo "$bin/bench/$1"; else echo "$bin/$1"; fi
}

start=$SECONDS failed=0
: >"$out/summary.txt"
# step NAME CAP_SECONDS STDOUT_FILE STDERR_FILE CMD...: runs CMD under min(CAP, what is left of the
# budget), records its exit code and time; a step with less than 15 s left is not started.
step() {
  local name=$1 cap=$2 so=$3 se=$4 left limit t0 rc
  shift 4
  left=$((budget - (SECONDS - start)))
  limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 15 ]; then
    echo "$name: not run (budget of $budget s used up)" | tee -a "$out/summary.txt" >&2
    failed=1
    return
  fi
  t0=$SECONDS
  echo "== $name (limit $limit s)" >&2
  timeout --kill-after=10 "$limit" "$@" >"$so" 2>"$se"
  rc=$?
  echo "$name: exit $rc$([ "$rc" -eq 124 ] && echo ' (cut by its time limit)')$([ "$rc" -eq 77 ] && echo ' (skipped: no GPU)') in $((SECONDS - t0)) s" | tee -a "$out/summary.txt" >&2
  [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || failed=1
}

{
  echo "date: $(date -u +%FT%TZ)"; echo "binaries: $bin"; echo "peer python: $MIRA_PY"
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  ldd --version 2>&1 | head -1
  "$MIRA_PY" -c 'import sys; print("python", sys.version.split()[0])
for m in ("torch", "transformers", "peft"):
    try:
        mod = __import__(m); print(m, mod.__version__)
    except Exception as e:
        print(m, "NOT importable:", type(e).__name__, e)
import torch; print("torch cuda:", torch.cuda.is_available(), torch.version.cuda)' 2>&1
} >"$out/env.txt" 2>&1

# Correctness first: the numbers below mean little if the ops are wrong.
step test_gpu 150 "$out/test_gpu.txt" "$out/test_gpu.txt.err" "$(find_bin test_gpu)" --gtest_color=no
step train_cpu_vs_cuda 60 "$out/train_cpu_vs_cuda.txt" "$out/train_cpu_vs_cuda.txt.err" \
  bash "$root/tests/gpu/train_cpu_vs_cuda.sh" mpirun "$(find_bin mira_hpc)" "$out/train_cpu_vs_cuda"
step backend_choice 40 "$out/backend_choice.txt" "$out/backend_choice.txt.err" \
  bash "$root/tests/cli/backend_choice.sh" mpirun "$(find_bin mira_hpc)" 1 "$root/tests/cli/configs/good.ini"
step gpu_mpi_nccl_np1 40 "$out/gpu_mpi_nccl_np1.txt" "$out/gpu_mpi_nccl_np1.txt.err" \
  mpirun -n 1 "$(find_bin test_gpu_mpi_nccl_exchange)" --gtest_color=no
step gpu_mpi_device_aggregate_np1 40 "$out/gpu_mpi_device_aggregate_np1.txt" \
  "$out/gpu_mpi_device_aggregate_np1.txt.err" mpirun -n 1 "$(find_bin test_gpu_mpi_device_aggregate)" --gtest_color=no
for n in 1 2 3 4; do
  step "gpu_mpi_staged_np$n" 40 "$out/gpu_mpi_staged_np$n.txt" "$out/gpu_mpi_staged_np$n.txt.err" \
    mpirun -n "$n" "$(find_bin test_gpu_mpi_staged_exchange)" --gtest_color=no
done
# The benchmarks.
step kernels 150 "$out/kernels.jsonl" "$out/kernels.log" bash "$here/run.sh" kernels
step train_gpu 240 "$out/train_gpu.jsonl" "$out/train_gpu.log" \
  bash "$here/run.sh" train_gpu --batch "8 32" --steps 8 --warmup 2 --compile auto
# Where a step's time goes: every backend op fenced (MIRA_PROFILE=1), then per kernel (Nsight
# Compute, when the machine has it: exit 77 otherwise).
step profile 60 "$out/profile.json" "$out/profile.txt" env MIRA_PROFILE=1 "$(find_bin train_gpu_main)" \
  --batch 8 --steps 5 --warmup 2
# Session 6's cuBLASLt bias epilogue against the composed bias path, back to back (tokens/s lines).
# shellcheck disable=SC2016
step epilogue_ab 60 "$out/epilogue_ab.jsonl" "$out/epilogue_ab.log" bash -c 'for e in 1 0 1 0; do
  MIRA_CUDA_EPILOGUES=$e "$1" --batch 8 --steps 6 --warmup 2 | sed "s/^{/{\"epilogues\":$e,/"; done' _ \
  "$(find_bin train_gpu_main)"
# shellcheck disable=SC2016
step ncu 120 "$out/ncu_top.txt" "$out/ncu.err" bash -c '[ -n "$1" ] || { echo "no ncu on this machine"; exit 77; }
  "$1" --csv --metrics gpu__time_duration.sum "$2" --batch 8 --steps 1 --warmup 0 >"$3/ncu.csv" &&
  "$4" "$5/ncu_top.py" "$3/ncu.csv" --top 30' _ "$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || true)" \
  "$(find_bin train_gpu_main)" "$out" "$MIRA_PY" "$here"
step exchange_device 90 "$out/exchange_device.jsonl" "$out/exchange_device.log" \
  bash "$here/run.sh" exchange_device --ranks "1 2 4" --budget 0.2
# Session 4's open question: does a cuda run stop on SIGUSR1 (on cpu and the emulator it does)?
step signal_stop 45 "$out/signal_stop.txt" "$out/signal_stop.txt.err" \
  bash "$here/signal_stop_check.sh" mpirun "$(find_bin mira_hpc)" cuda
echo "total $((SECONDS - start)) s of $budget" | tee -a "$out/summary.txt" >&2
# A digest on stdout (the device tool returns the output's tail and only a few files).
{
  echo "== summary"; cat "$out/summary.txt"
  echo "== test_gpu"; grep -E "^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \] [0-9]+ test" "$out/test_gpu.txt" 2>/dev/null | head -20
  echo "== kernels (sessions 5-6: bf16 attention, fused LoRA dropout, bf16 activations)"
  grep -E '"kernel":"(attention|lora_|layernorm_fwd|gelu_fwd)' "$out/kernels.jsonl" 2>/dev/null |
    sed -E 's/.*"kernel":"([^"]*)".*"value":([^,]*),"unit":"([^"]*)".*"ratio":([^,]*),"ms":([^,]*).*"check":"([^"]*)".*"config":"[^"]*"\}?.*/\1 \2 \3 ratio \4 ms \5 check \6/'
  grep -E "fused .* ms, dropout" "$out/kernels.log" 2>/dev/null | head -6
  echo "== signal_stop"; tail -3 "$out/signal_stop.txt" 2>/dev/null
  echo "== train_gpu"; cut -c1-160 "$out/train_gpu.jsonl" 2>/dev/null | grep -E "tokens_per_s|ms_per_step|mfu_lora|mem" | head -12
  echo "== epilogue_ab (MIRA_CUDA_EPILOGUES 1 / 0)"; cut -c1-90 "$out/epilogue_ab.jsonl" 2>/dev/null
  echo "== profile"; grep -E "^family" "$out/profile.txt" 2>/dev/null; cut -c1-160 "$out/profile.json" 2>/dev/null
  echo "== ncu"; head -22 "$out/ncu_top.txt" 2>/dev/null | cut -c1-150
} 2>/dev/null
exit "$failed"
