#!/usr/bin/env bash
# The federated loop with device-resident adapters (src/fed/device_store.h) on mira_hpc_emu, the app
# on the CUDA emulator, with distinct emulated devices per rank (MIRA_EMU_DEVICES=rank), so the
# adapters move by the NCCL exchange (emulated over MPI, tests/emu/nccl_emu.cpp). For ALGORITHM:
#   1. cuda (fp32 base weights) at np 1, 2 and 3 (NCCL) and at np 2 on one shared device (host-staged
#      MPI): every per-round loss bitwise equal (compare_metrics.py), since the aggregation kernels
#      repeat the CPU's double-precision operations in client order whatever the rank count;
#   2. cpu at np 2 vs cuda: final client test losses within 1e-3 relative (the bound of
#      tests/gpu/train_cpu_vs_cuda.sh: fp32 summation order differences only);
#   3. fedit: federation.reproducible = false at np 3 (ncclAllReduce of per-rank partial sums):
#      within the same bound of the reproducible run, and the log says it used the all-reduce.
# Checkpoint/resume across rank counts on this path: tests/integration/resume.sh, run by the emu
# tests with mira_hpc_emu (np 2 stopped, np 1 resumed, bitwise equal to an uninterrupted np 2 run).
# usage: fed_device_exchange.sh MPIEXEC MIRA_HPC_EMU mira|fedit OUT_DIR
#   MIRA_TEST_GPUS=N  on a real GPU machine with N GPUs (mira_hpc instead of mira_hpc_emu): the NCCL
#                     runs use at most N ranks (N = 1: np 1 only); the shared-device run needs the
#                     ranks to see one GPU (CUDA_VISIBLE_DEVICES=0 is set for it). Default 3 (emulator).
set -uo pipefail
mpiexec=$1 bin=$2 alg=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
common=(train --run.algorithm "$alg" --run.rounds 3 --run.seed 7 --run.clients 6 --model.preset tiny
        --data.source synthetic --data.examples_per_client 16 --data.max_length 48 --train.mode steps
        --train.local_steps 2 --train.batch_size 4 --lora.dropout 0.05 --federation.sample_fraction 0.5
        --optim.lr 1e-3 --optim.keep_state true --model.base_precision fp32 --run.log_level info)
[ "$alg" = mira ] && common+=(--mira.lambda 20)
fail() { echo "FAIL: $*"; exit 1; }
run() {  # name np devices-env [options...]
  local name=$1 np=$2 devices=$3
  shift 3
  rm -rf "$out/$name"
  if ! env MIRA_EMU_DEVICES="$devices" "$mpiexec" -n "$np" "$bin" "${common[@]}" "$@" --run.output "$out/$name" \
      >"$out/$name.log" 2>&1; then
    tail -20 "$out/$name.log"
    fail "run $name (np $np) failed"
  fi
}
expect_log() {  # name pattern
  grep -qE "$2" "$out/$1.log" || { tail -20 "$out/$1.log"; fail "$1: the log does not say '$2'"; }
}

gpus=${MIRA_TEST_GPUS:-3}
nmax=$((gpus < 3 ? gpus : 3))
run cpu 2 rank --run.backend cpu
cuda_runs=()
for n in $(seq 1 "$nmax"); do
  run cuda-np$n "$n" rank --run.backend cuda
  expect_log cuda-np$n "client adapters in GPU memory; exchange: NCCL"
  cuda_runs+=("$out/cuda-np$n/metrics.jsonl")
done
CUDA_VISIBLE_DEVICES=0 run cuda-np2-shared 2 1 --run.backend cuda --run.share_devices true
expect_log cuda-np2-shared "client adapters in GPU memory; exchange: host-staged MPI"
grep -q "client adapters in GPU memory" "$out/cpu.log" && fail "the cpu run kept its adapters on the device"

echo "== $alg: cuda at np 1..$nmax (NCCL) and np 2 (shared device, host-staged): per-round losses bitwise"
python3 "$here/../integration/compare_metrics.py" "${cuda_runs[@]}" "$out/cuda-np2-shared/metrics.jsonl" ||
  fail "rank counts disagree"

bound() {  # reference candidate label
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
def last(path):
    rows = [json.loads(l) for l in open(path) if '"client_test_loss"' in l]
    return rows[-1]["client_test_loss"]
a, b = last(sys.argv[1]), last(sys.argv[2])
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print("%s: worst relative difference of the final client test losses %.3g (bound 1e-3)" % (sys.argv[3], worst))
sys.exit(0 if worst <= 1e-3 and len(a) == len(b) else 1)
PY
}
echo "== $alg: cpu vs cuda"
bound "$out/cpu/metrics.jsonl" "$out/cuda-np$nmax/metrics.jsonl" "cpu np2 vs cuda np$nmax" || fail "cpu and cuda disagree"

if [ "$alg" = fedit ]; then
  echo "== fedit: federation.reproducible = false (ncclAllReduce)"
  run cuda-allreduce "$nmax" rank --run.backend cuda --federation.reproducible false
  expect_log cuda-allreduce "FedIT sums with ncclAllReduce"
  bound "$out/cuda-np$nmax/metrics.jsonl" "$out/cuda-allreduce/metrics.jsonl" "reproducible vs all-reduce" ||
    fail "the all-reduce moved the losses"
  run cpu-allreduce 2 rank --run.backend cpu --federation.reproducible false
  expect_log cpu-allreduce "federation.reproducible = false: ignored on the cpu backend"
  python3 "$here/../integration/compare_metrics.py" "$out/cpu/metrics.jsonl" "$out/cpu-allreduce/metrics.jsonl" ||
    fail "reproducible = false changed the cpu run"
fi
echo "PASS"
