#!/usr/bin/env bash
# End to end on a GPU: the same short federated run (tiny GPT-2 preset, synthetic tasks, 4 clients,
# MIRA, 2 rounds, LoRA dropout on) with run.backend = cpu and = cuda, once with fp32 base weights and
# once with bf16 ones (the CPU backend is the bf16 oracle: it rounds the same operands); every
# client's final test loss must agree within 1e-3 relative. Why that bound: per op the backends differ
# by fp32 summation order only (a few float ulps; bf16 products are exact in fp32), and 2 rounds of
# AdamW at lr 3e-3 grow that to about 1e-5 relative in the loss; a wrong kernel moves the losses by
# 1e-2 or more.
# Exit 77 (ctest: skipped) with the reason when no GPU is usable.
# usage: train_cpu_vs_cuda.sh MPIEXEC BINARY [OUT_DIR]
#   MIRA_TEST_RANKS=N         run both with N ranks (default 1; the clients are spread over the ranks and
#                             the adapters move by the MPI exchange)
#   MIRA_TEST_ARGS="..."      more options for both runs (e.g. --run.share_devices true when the ranks
#                             share one GPU; tests/emu runs this script with mira_hpc_emu)
set -uo pipefail
mpiexec=$1 bin=$2 out=${3:-$(mktemp -d)}
np=${MIRA_TEST_RANKS:-1}
read -r -a extra <<<"${MIRA_TEST_ARGS:-}"
devices=$("$bin" --version | sed -n 's/^  devices: *//p')
case "$devices" in none*) echo "SKIPPED: no usable GPU: $devices"; exit 77 ;; esac
echo "devices: $devices"
mkdir -p "$out"
common=(train --run.rounds 2 --run.seed 7 --run.clients 4 --model.preset tiny --data.source synthetic
        --data.examples_per_client 24 --data.max_length 64 --train.local_steps 3 --train.mode steps
        --train.batch_size 4 --lora.dropout 0.05 --federation.sample_fraction 1 --run.log_level info)
status=0
for prec in fp32 bf16; do
  for be in cpu cuda; do
    rm -rf "$out/$prec-$be"
    if ! "$mpiexec" -n "$np" "$bin" "${common[@]}" "${extra[@]}" --run.backend "$be" --model.base_precision "$prec" \
        --run.output "$out/$prec-$be" >"$out/$prec-$be.log" 2>&1; then
      echo "FAIL: the $be run in $prec failed:"; tail -20 "$out/$prec-$be.log"; exit 1
    fi
  done
  grep -h "backend:" "$out/$prec-cuda.log"
  echo "== model.base_precision = $prec"
  # The last record's client_test_loss of both runs, compared client by client.
  python3 - "$out/$prec-cpu/metrics.jsonl" "$out/$prec-cuda/metrics.jsonl" <<'PY' || status=1
import json, sys
def last(path):
    rows = [json.loads(l) for l in open(path) if '"client_test_loss"' in l]
    return rows[-1]["client_test_loss"]
a, b = last(sys.argv[1]), last(sys.argv[2])
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print("client test loss cpu :", " ".join("%.6f" % x for x in a))
print("client test loss cuda:", " ".join("%.6f" % x for x in b))
print("worst relative difference %.3g (bound 1e-3)" % worst)
sys.exit(0 if worst <= 1e-3 and len(a) == len(b) else 1)
PY
done
exit $status
