#!/usr/bin/env bash
# One CLI test case: runs mira_hpc under mpiexec with N ranks and checks the exit code, that the
# expected message appears on stderr+stdout exactly `count` times (an error is printed once, not
# once per rank), and that every rank ended (mpiexec returned within the ctest TIMEOUT).
# usage: run_case.sh MPIEXEC BINARY RANKS EXPECTED_EXIT REGEX COUNT -- mira_hpc args...
set -u
mpiexec=$1 binary=$2 ranks=$3 expected=$4 regex=$5 count=$6
shift 6
[ "$1" = "--" ] && shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$mpiexec" -n "$ranks" "$binary" "$@" >"$out" 2>&1
rc=$?
fail=0
if [ "$rc" -ne "$expected" ]; then
  echo "FAIL: exit code $rc, expected $expected"
  fail=1
fi
n=$(grep -cE -- "$regex" "$out")
if [ "$count" = "any" ]; then
  [ "$n" -ge 1 ] || { echo "FAIL: no line matches /$regex/"; fail=1; }
elif [ "$n" -ne "$count" ]; then
  echo "FAIL: /$regex/ matched $n lines, expected $count"
  fail=1
fi
if [ $fail -ne 0 ] || [ -n "${MIRA_CLI_VERBOSE:-}" ]; then
  echo "--- output of: mpiexec -n $ranks mira_hpc $*"
  cat "$out"
fi
exit $fail
