#!/usr/bin/env bash
# run.backend on whatever machine runs the tests: reads `mira_hpc --version` to learn whether a GPU is
# usable here, then checks what `--backend cuda` and `--backend auto` do with N ranks:
#   no usable GPU: cuda stops every rank with exit code 2 and one line saying why (no device, or a
#                  binary without CUDA); auto runs on the CPU and logs why.
#   a usable GPU:  (one rank) both take the CUDA backend after its start-up check.
#   the CUDA emulator's one device (tests/emu's mira_hpc_emu), N > 1 ranks, all on that device:
#                  cuda is refused (exit 2, one line naming run.share_devices = true), auto falls back
#                  to the CPU with that reason, cuda with run.share_devices = true runs.
# usage: backend_choice.sh MPIEXEC BINARY RANKS CONFIG
set -u
mpiexec=$1 bin=$2 np=$3 config=$4
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fail=0
check() {  # check EXPECTED_EXIT REGEX COUNT -- args...
  local want=$1 regex=$2 count=$3
  shift 4
  "$mpiexec" -n "$np" "$bin" train --dry-run --config "$config" "$@" >"$out" 2>&1
  local rc=$? n
  n=$(grep -cE -- "$regex" "$out")
  if [ "$rc" -ne "$want" ] || [ "$n" -ne "$count" ]; then
    echo "FAIL: mira_hpc $* with $np rank(s): exit $rc (want $want), /$regex/ matched $n line(s) (want $count)"
    cat "$out"
    fail=1
  else
    echo "ok: mira_hpc $* with $np rank(s): exit $rc; $(grep -m1 -E -- "$regex" "$out")"
  fi
}

devices=$("$bin" --version | sed -n 's/^  devices: *//p')
echo "devices here: $devices"
case "$devices" in
  none*)
    check 2 "run\.backend = cuda: (rank 0 on .* sees no usable GPU: .+|this binary was built without the CUDA backend .*); use run\.backend = cpu" 1 -- --backend cuda
    check 0 "backend: cpu \(run\.backend = auto; (rank 0 on .* sees no usable GPU|this binary was built without)" 1 -- --backend auto
    check 0 "backend: cuda" 0 -- --backend cpu
    ;;
  *)
    if [ "$np" -eq 1 ]; then
      check 0 "backend: cuda; rank 0 on GPU [0-9]+ .*start-up check: [0-9]+ ops within" 1 -- --backend cuda
      check 0 "backend: cuda; rank 0 on GPU" 1 -- --backend auto
    elif [[ "$devices" == "1 x CPU emulator (tests/emu)"* ]]; then
      # Every rank sees the one emulated device (one fixed UUID): the sharing rules of the device binding.
      share="would share GPU GPU-[0-9a-f-]+ .*or allow sharing with run\.share_devices = true"
      check 2 "run\.backend = cuda: GPU binding on .*$share.*; use run\.backend = cpu" 1 -- --backend cuda
      check 0 "backend: cpu \(run\.backend = auto; GPU binding on .*$share" 1 -- --backend auto
      check 0 "backend: cuda; rank 0 on GPU 0 .*GPUs shared\); start-up check: [0-9]+ ops within" 1 -- \
        --backend cuda --run.share_devices true
    else
      echo "skipped: $np ranks on a GPU machine (the binding would depend on how many GPUs it has)"
    fi
    ;;
esac
exit $fail
