#!/usr/bin/env bash
# Benchmark (issue 6): write and read MB/s of our parallel-HDF5 checkpoint (CheckpointWriter /
# CheckpointReader) beside plain MPI-IO (MPI_File_write_at_all / MPI_File_read_at_all) of the same
# bytes into one shared file with the same fsync, on several rank counts. Reads are cold (the
# file's pages are dropped from the page cache first). Program: bench/checkpoint_main.cpp.
#   bench/run.sh checkpoint [--ranks "1 4 8"] [--K 16] [--r 16] [--cases "paper larger"] [--repeat 2]
#                           [--dir DIR] [--io default|ompio|romio321]
# Cases (GPT-2 large shape: 36 layers, width 1280, r 16 on attn.c_attn + attn.c_proj + mlp.c_proj,
# 32.4 MB of float32 adapter per client at r 16; --r 4 gives 8.1 MB = 7.7 MiB):
#   paper  : adapters only (what the paper's run stores per client)
#   larger : adapters + Adam moments + step (3x the bytes: a resumable checkpoint with optimiser state)
# --K: clients (the paper has 80; 16 keeps a run here under ~3 minutes and 5 GB of memory).
# --dir: where the files go (default: a fresh directory under ${TMPDIR:-/tmp}, removed at the end);
#        on a cluster point it at the parallel file system you checkpoint to.
# One JSON line per figure on stdout (ratio = ours / MPI-IO, higher is better for us); text on stderr.
# Binary: ${MIRA_BUILD_DIR:-build/ci}/bench/bench_checkpoint (relative paths from the repo root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ranks="1 4 8" K=16 r=16 cases="paper larger" repeat=2 dir="" io=default
while [ $# -gt 0 ]; do
  case $1 in
    --ranks) ranks=$2 ;; --K) K=$2 ;; --r) r=$2 ;; --cases) cases=$2 ;; --repeat) repeat=$2 ;;
    --dir) dir=$2 ;; --io) io=$2 ;;
    *) echo "bench/checkpoint.sh: unknown option $1 (allowed: --ranks --K --r --cases --repeat --dir --io)" >&2; exit 2 ;;
  esac
  shift 2
done
. "$here/lib.sh"
bin=$(bench_find_binary bench_checkpoint)

own_dir=0
if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/mira-bench-ckpt.XXXXXX"); own_dir=1; fi
cleanup() { if [ $own_dir = 1 ]; then rm -rf "$dir"; fi; }
trap cleanup EXIT

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# HDF5_USE_FILE_LOCKING and the MPI-IO component are left as the caller sets them (the run's own
# settings are what we measure); docs/results.md says what to use on cluster file systems.
mca=()
[ "$io" = default ] || mca=(--mca io "$io")
echo "checkpoint bench: $bin, dir $dir, ranks [$ranks], K $K, r $r, cases [$cases], repeat $repeat, MPI-IO component: $io, HDF5_USE_FILE_LOCKING=${HDF5_USE_FILE_LOCKING:-unset}" >&2
for c in $cases; do
  case $c in
    paper) args=(--optimizer 0) ;;
    larger) args=(--optimizer 1) ;;
    *) echo "bench/checkpoint.sh: unknown case $c (paper, larger)" >&2; exit 2 ;;
  esac
  for np in $ranks; do
    echo "== case $c, np $np" >&2
    mpirun -n "$np" --oversubscribe --bind-to none "${mca[@]}" "$bin" --dir "$dir" --K "$K" --layers 36 --width 1280 \
      --r "$r" --repeat "$repeat" --shape-name gpt2-large-shape "${args[@]}"
  done
done
