# shellcheck shell=bash
# Shared by the GPU benchmarks (bench/kernels.sh, bench/train_gpu.sh, bench/exchange_device.sh);
# sourced after bench/lib.sh. Their programs exist only in builds with the CUDA backend:
# bench/CMakeLists.txt writes <build>/bench/gpu_benches.txt ("cuda" or "no-cuda") so a script can
# tell "this build has no CUDA backend" (a skip, like having no device) from "not built" (an error).
# gpu_bench_binary NAME: prints the path of NAME and returns 0; returns 1 without output when the
# build has no CUDA backend (the caller prints its skip line); exits 2 (via bench_find_binary) when
# the program should exist but was not built.
# shellcheck disable=SC2034  # used by the scripts that source this file
GPU_BENCH_NO_CUDA="no CUDA device: this build has no CUDA backend (configure with -DMIRA_CUDA=ON on a machine with nvcc)"
gpu_bench_binary() {
  local name=$1 root build
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  build=${MIRA_BUILD_DIR:-build/ci}
  case $build in /*) ;; *) build=$root/$build ;; esac
  if [ -f "$build/bench/gpu_benches.txt" ] && grep -q '^no-cuda' "$build/bench/gpu_benches.txt"; then
    return 1
  fi
  bench_find_binary "$name"
}

# gpu_bench_require BENCH NAME: sets GPU_BENCH_BIN to the path of program NAME; when this build has
# no CUDA backend prints {"bench":"BENCH","skipped":...} and exits 0 (the calling script); exits
# with gpu_bench_binary's code when the program should exist but was not built.
gpu_bench_require() {
  local rc=0
  GPU_BENCH_BIN=$(gpu_bench_binary "$2") || rc=$?
  if [ "$rc" -eq 1 ]; then
    echo "{\"bench\":\"$1\",\"skipped\":\"$GPU_BENCH_NO_CUDA\"}"
    exit 0
  elif [ "$rc" -ne 0 ]; then
    exit "$rc"
  fi
}
