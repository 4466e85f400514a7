#!/usr/bin/env bash
# Runs one benchmark: bench/run.sh NAME [args]. Each benchmark is bench/NAME.sh; it prints one JSON
# line per figure on stdout ({"bench","metric","value","unit","peer","peer_value","ratio","config"},
# ratio = ours / peer, higher is better for us) and human-readable text on stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ ! -f "$here/$1.sh" ]; then
  echo "usage: bench/run.sh NAME [args]; NAME is one of:" >&2
  for f in "$here"/*.sh; do n=$(basename "$f" .sh); [ "$n" = run ] || echo "  $n" >&2; done
  exit 2
fi
name=$1
shift
exec bash "$here/$name.sh" "$@"
