#!/usr/bin/env bash
# The README's test command: set-up, build, then every test (unit, MPI under mpiexec with 1-4
# ranks, CLI) through ctest. Prints ctest's summary line last and exits non-zero on any failure.
#   scripts/test.sh                 # everything (what CI runs)
#   scripts/test.sh -R config       # extra arguments go to ctest
# Environment: MIRA_PRESET (default ci), MIRA_JOBS (build/test parallelism, default: cores).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
preset=${MIRA_PRESET:-ci}
jobs=${MIRA_JOBS:-$(nproc)}
start=$(date +%s)
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$jobs"
built=$(date +%s)
echo "test.sh: build took $((built - start)) s"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
ctest --test-dir "build/$preset" --output-on-failure -j "$jobs" --no-tests=error "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo "test.sh: tests took $(( $(date +%s) - built )) s"
# ctest's summary line, last, for whoever reads the end of the log.
grep -E "^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -n 1
exit "$rc"
