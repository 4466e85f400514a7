#!/usr/bin/env bash
# Benchmark: the device mode of the exchange benchmark (issue 7): adapter exchanges for adapters in
# GPU memory (src/comm/nccl_exchange.h) at the paper's adapter sizes (GPT-2 124M and large, r 16 on
# c_attn + attn.c_proj + mlp.c_proj: 6.5 and 32.4 MB), program bench/exchange_device_main.cpp:
# NcclAdapterExchange where every rank has its own GPU (np 1 on a one-GPU machine: FedIT gather and
# a raw self send/receive), HostStagedAdapterExchange always (np 2-4 share the one GPU), each beside
# the host MpiAdapterExchange. A separate script so bench/exchange.sh (host buffers) stays as it is.
#   bench/run.sh exchange_device [--ranks "1 2 4"] [--models gpt2-124m,gpt2-large] [--clients 8] [--budget 0.3]
# One JSON line per figure on stdout (times: ratio = the slower reference / ours-on-device, higher is
# better for the device path), text on stderr. Without a CUDA device (or a build without the CUDA
# backend): one line {"bench":"exchange_device","skipped":"no CUDA device: ..."}, exit 0.
# Binary: ${MIRA_BUILD_DIR:-build/ci}/bench/bench_exchange_device (CUDA builds only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ranks="1 2 4" extra=()
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "bench/exchange_device.sh: $1 needs a value" >&2; exit 2; }
  case $1 in
    --ranks) ranks=$2 ;;
    --models|--clients|--budget|--r|--min-iters|--max-iters) extra+=("$1" "$2") ;;
    *) echo "bench/exchange_device.sh: unknown option $1 (allowed: --ranks --models --clients --budget --r --min-iters --max-iters)" >&2; exit 2 ;;
  esac
  shift 2
done
. "$here/lib.sh"
. "$here/gpu_lib.sh"
gpu_bench_require exchange_device bench_exchange_device
bin=$GPU_BENCH_BIN
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for np in $ranks; do
  echo "== exchange_device np $np: $bin ${extra[*]}" >&2
  mpirun -n "$np" --oversubscribe --bind-to none "$bin" "${extra[@]}" >"$out"
  cat "$out"
  if grep -q '"skipped"' "$out"; then exit 0; fi  # the same reason for every rank count
done
