#!/usr/bin/env bash
# Benchmark (issue 5): one neighbour-exchange round of our MpiAdapterExchange (one client per rank,
# MPI_Neighbor_alltoallv on the dist-graph communicator) on a ring and on a k-regular circulant
# graph, beside MPI_Allgather of every rank's adapter, for several rank counts and adapter sizes;
# plus the cost model t(round) = deg * (alpha + bytes/beta) fitted on the ring, its prediction of the
# k-regular round and the modelled crossover degree where Allgather wins (lines marked "modelled").
# Program: bench/exchange_main.cpp.
#   bench/run.sh exchange [--ranks "2 3 4 5 6 7 8"] [--sizes 1024,65536,262144,1048576,4194304,8388608]
#                         [--degree 4] [--budget 0.4] [--fit-min 1048576]
# Rank counts above the core count run oversubscribed (marked in each config): the figures then
# describe the method on this machine's shared memory, not a cluster network.
# One JSON line per figure on stdout; for times ratio = MPI_Allgather / ours (higher is better for
# us), for MB/s ratio = ours / MPI_Allgather. Human text on stderr.
# Binary: ${MIRA_BUILD_DIR:-build/ci}/bench/bench_exchange (relative paths from the repo root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ranks="2 3 4 5 6 7 8" sizes=1024,65536,262144,1048576,4194304,8388608 degree=4 budget=0.4 fit_min=1048576
while [ $# -gt 0 ]; do
  case $1 in
    --ranks) ranks=$2 ;; --sizes) sizes=$2 ;; --degree) degree=$2 ;; --budget) budget=$2 ;; --fit-min) fit_min=$2 ;;
    *) echo "bench/exchange.sh: unknown option $1 (allowed: --ranks --sizes --degree --budget --fit-min)" >&2; exit 2 ;;
  esac
  shift 2
done
. "$here/lib.sh"
bin=$(bench_find_binary bench_exchange)

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cores=$(nproc)
echo "exchange bench: $bin, ranks [$ranks], sizes $sizes, degree $degree, $cores cores" >&2
for np in $ranks; do
  note="cores$cores"
  [ "$np" -gt "$cores" ] && note="oversubscribed(np>cores=$cores)"
  echo "== np $np ($note)" >&2
  mpirun -n "$np" --oversubscribe --bind-to none "$bin" --sizes "$sizes" --degree "$degree" --budget "$budget" --fit-min "$fit_min" --note "$note"
done
