#!/usr/bin/env bash
# What a resume must refuse (exit code 2, one message naming the reason, nothing changed): a run
# directory that already holds a run without --resume, another base model (same shapes, other
# weights: found by the SHA-256 of model.safetensors), another seed, another graph, another K; and
# a corrupted latest checkpoint; other values of keys that change the results (every such key listed
# with both values). And what it must not refuse: another base-weight precision (a warning that the
# continuation is not bitwise an uninterrupted run), and keys a resume may change (checkpoint.*,
# eval.*: app/resume_config.h).
# usage: resume_refusals.sh MPIEXEC MIRA_HPC FIXTURE_MODEL_DIR
set -uo pipefail
mpiexec=$1 bin=$2 fixture=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$fixture" "$work/base"
base=(--model.path "$work/base" --run.rounds 3 --federation.sample_fraction 1
      --train.mode steps --train.local_steps 1 --train.batch_size 2 --lora.rank 2
      --data.examples_per_client 6 --log-level warn)
common=("${base[@]}" --run.clients 4)
"$mpiexec" -n 2 "$bin" train "${common[@]}" --run.output "$work/run" >"$work/first.log" 2>&1 ||
  { cat "$work/first.log"; exit 1; }
fail=0
expect_exit() {  # expect_exit CODE NAME REGEX ARGS...: exit code CODE and REGEX once in the output
  local want=$1 name=$2 regex=$3
  shift 3
  "$mpiexec" -n 2 "$bin" train "$@" >"$work/$name.log" 2>&1
  local rc=$?
  local n
  n=$(grep -cE -- "$regex" "$work/$name.log")
  if [ "$rc" -ne "$want" ] || [ "$n" -ne 1 ]; then
    echo "FAIL $name: exit $rc (expected $want), /$regex/ matched $n times (expected 1)"
    cat "$work/$name.log"
    fail=1
  else
    echo "ok   $name"
  fi
}
expect() { expect_exit 2 "$@"; }  # a refusal
expect no_resume "already holds a run \(checkpoints/latest\); continue it with --resume auto" \
  "${common[@]}" --run.output "$work/run"
expect seed "checkpoint .* does not fit this run: it was written with run.seed = 1234, this run has 5" \
  "${common[@]}" --run.output "$work/run" --resume auto --run.seed 5
expect graph "does not fit this run: its graph weights differ" \
  "${common[@]}" --run.output "$work/run" --resume auto --federation.graph ring
expect clients "refused, not loaded" \
  "${base[@]}" --run.output "$work/run" --resume auto --run.clients 5
expect config "does not fit this run: its configuration differs in 3 key\(s\) that change the results: lora.alpha = '8' there, '16' here; optim.lr = '0.0003' there, '0.01' here; mira.lambda = '0.5' there, '0.25' here; resume with the checkpoint's values" \
  "${common[@]}" --run.output "$work/run" --resume auto --lora.alpha 16 --optim.lr 1e-2 --mira.lambda 0.25
expect_exit 0 may_change "^run: 3 rounds \(0 in this job\)" \
  "${common[@]}" --run.output "$work/run" --resume auto --checkpoint.keep 1 --checkpoint.every 2 --eval.every 2 \
  --eval.global_matrix true --run.threads 1
# Another base model with the same shapes: change one weight byte near the end of the file.
size=$(stat -c %s "$work/base/model.safetensors")
printf '\x55' | dd of="$work/base/model.safetensors" bs=1 seek=$((size - 3)) conv=notrunc status=none
expect base_model "does not fit this run: it was trained on base model .*sha256" \
  "${common[@]}" --run.output "$work/run" --resume auto
cp "$fixture/model.safetensors" "$work/base/model.safetensors"
# Not a refusal: another base-weight precision continues with one warning naming both computes.
expect_exit 0 precision "resume: .* was computed with cpu, base weights fp32, this run uses cpu, base weights bf16; .*not bitwise" \
  "${common[@]}" --run.output "$work/run" --resume auto --model.base_precision bf16
# Not a refusal: a checkpoint of an older version (tests/fixtures/export/ckpt-2.h5: its config lacks
# later keys, base_model_path is relative to the source root) resumed from another working
# directory with an absolute model.path: the base model matches by SHA-256, the missing keys are
# skipped. Its settings are those of its stored config.
old=(--model.path "$fixture" --run.seed 7 --run.clients 4 --lora.rank 4 --lora.alpha 16 --lora.targets c_attn,c_proj,c_fc
     --optim.lr 0.02 --train.mode steps --train.local_steps 4 --train.batch_size 4 --data.examples_per_client 12
     --data.max_length 32 --federation.sample_fraction 1 --checkpoint.keep 1 --log-level warn)
cd "$work"
expect_exit 0 old_relative "^run: 3 rounds \(1 in this job\)" "${old[@]}" --run.rounds 3 --run.output "$work/old" \
  --resume "$fixture/../../export/ckpt-2.h5"
cd - >/dev/null
# A corrupted checkpoint: flip a byte in the middle of the latest file.
latest=$(readlink -f "$work/run/checkpoints/latest")
lsize=$(stat -c %s "$latest")
printf '\xff' | dd of="$latest" bs=1 seek=$((lsize / 2)) conv=notrunc status=none
expect corrupt "refused, not loaded" "${common[@]}" --run.output "$work/run" --resume auto
exit $fail
