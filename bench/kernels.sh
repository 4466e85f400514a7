#!/usr/bin/env bash
# Benchmark: the CUDA kernel lab (bench/kernels_main.cpp, program bench_kernels). Every kernel family
# of kernels/cuda at GPT-2 124M training shapes (B*T = 8*1024 rows, C 768, 12 heads, vocab 50257),
# validated against the CPU kernel of the same op, then timed (warm-up, cudaEvents around each of
# --reps launches, median). One JSON line per kernel on stdout: achieved GB/s (memory-bound) or
# TFLOP/s (GEMM-like) as "value", the device's datasheet peak as "peer"/"peer_value" and the
# fraction of it as "ratio" (null for a device not in bench/device_peaks.h); "check" says whether
# the validation passed. Details on stderr.
#   bench/run.sh kernels [--batch 8] [--seq 1024] [--reps 20] [--warmup 3] [--check-rows 2048]
#                        [--only gemm,layernorm_fwd,...] [--list]
# Without a CUDA device (or in a build without the CUDA backend) it prints one line
# {"bench":"kernels","skipped":"no CUDA device: <why>"} and exits 0. Exit 1 when a kernel failed
# its validation or a CUDA call failed, 2 for a bad option or a program that was not built.
# Binary: ${MIRA_BUILD_DIR:-build/ci}/bench/bench_kernels (target bench_kernels, CUDA builds only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/gpu_lib.sh"
gpu_bench_require kernels bench_kernels
bin=$GPU_BENCH_BIN
echo "kernel lab: $bin $*" >&2
exec "$bin" "$@"
