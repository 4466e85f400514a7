#!/usr/bin/env bash
# mpiexec for the tests, each launch with its own Open MPI session directory base. Two launches
# that start at the same moment (ctest -j) can otherwise race to create the shared top-level
# session directory (/tmp/ompi.<host>.<uid>) and one fails in orte_init with "mkdir ... File
# exists" (seen with Open MPI 4.1 in this project's CI). exec keeps the PID, so tests that signal
# the launcher (SIGUSR1 for stop-and-resume) still reach mpiexec; the empty base directories are
# left under MIRA_MPI_SESSIONS (the build tree's mpi-sessions/), which the build tree owns.
# usage: mpiexec_isolated.sh MPIEXEC [mpiexec arguments...]
set -euo pipefail
real=$1
shift
root=${MIRA_MPI_SESSIONS:-${TMPDIR:-/tmp}}
mkdir -p "$root"
OMPI_MCA_orte_tmpdir_base=$(mktemp -d "$root/s.XXXXXX")
export OMPI_MCA_orte_tmpdir_base
exec "$real" "$@"
