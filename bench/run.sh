#!/usr/bin/env bash
# Runs one benchmark: bench/run.sh NAME [args]. Each benchmark is bench/NAME.sh; it prints one JSON
# line per figure on stdout ({"bench","metric","value","unit","peer","peer_value","ratio","config"},
# ratio = ours / peer, higher is better for us) and human-readable text on stderr. GPU benchmarks
# (kernels, train_gpu, exchange_device) without a CUDA device print {"bench":NAME,"skipped":"no CUDA
# device: <why>"} instead and exit 0.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ ! -f "$here/$1.sh" ]; then
  echo "usage: bench/run.sh NAME [args]; NAME is one of:" >&2
  for f in "$here"/*.sh; do n=$(basename "$f" .sh); case $n in run|lib|gpu_lib|gpu_session) ;; *) echo "  $n" >&2 ;; esac; done
  exit 2
fi
name=$1
shift
exec bash "$here/$name.sh" "$@"
