#!/usr/bin/env bash
# `mira_hpc export`: the committed checkpoint tests/fixtures/export/ckpt-2.h5 re-exported on 1 and 2
# ranks must give exactly the committed folder peft_client1/ that Hugging Face PEFT loaded and
# checked (scripts/make_export_fixture.py): byte-identical files, i.e. the same tensor names, shapes,
# float32 values and config keys and values. Then the refusals (exit code 2, one line, nothing
# written or overwritten, no temporary folder left): an existing non-empty --out, a client out of
# range, a missing / truncated / corrupted checkpoint; and an export from a fresh run, and from one
# whose relative model.path is exported as the absolute folder.
# usage: export.sh MPIEXEC MIRA_HPC SOURCE_DIR
set -euo pipefail
mpiexec=$1 bin=$2 src=$3
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixture=$src/tests/fixtures/export

# The checkpoint's base_model_path is relative to the source root, as when the fixture was made.
cd "$src"
for np in 1 2; do
  out=$work/fresh$np
  "$mpiexec" -n "$np" "$bin" export --checkpoint "$fixture/ckpt-2.h5" --client 1 --out "$out" >"$work/x.out" 2>"$work/x.err" ||
    { cat "$work/x.err"; fail "export on $np rank(s) failed"; }
  [ "$(grep -c '^exported client 1 of ' "$work/x.out")" -eq 1 ] || { cat "$work/x.out"; fail "no single summary line"; }
  [ "$(ls "$out" | tr '\n' ' ')" = "adapter_config.json adapter_model.safetensors " ] || fail "unexpected files: $(ls "$out")"
  for f in adapter_config.json adapter_model.safetensors; do
    if ! cmp "$out/$f" "$fixture/peft_client1/$f"; then
      [ "$f" = adapter_config.json ] && diff "$out/$f" "$fixture/peft_client1/$f" >&2
      cmp -l "$out/$f" "$fixture/peft_client1/$f" | head >&2 || true
      fail "re-export on $np rank(s): $f differs from the PEFT-verified fixture"
    fi
  done
  echo "ok: re-export on $np rank(s) is byte-identical to tests/fixtures/export/peft_client1"
done
# The committed checkpoint stores the relative path (written before base_model_path was made absolute).
grep -Eq '"base_model_name_or_path": "(/.*/)?tests/fixtures/model/gpt2_tiny_fp32"' "$work/fresh1/adapter_config.json" ||
  fail "base_model_name_or_path is not the checkpoint's base_model_path"
grep -q '"fan_in_fan_out": true' "$work/fresh1/adapter_config.json" || fail "fan_in_fan_out is not true"

# Refusals.
sum_before=$(cat "$work/fresh1"/* | cksum)
truncated=$work/truncated.h5
head -c 5000 "$fixture/ckpt-2.h5" >"$truncated"
cp "$fixture/ckpt-2.h5" "$work/flipped.h5"
flip_byte "$work/flipped.h5" /adapters/mlp.c_fc/lora_A  # the middle byte: first of client 2 of 4
echo keep >"$work/afile"
for np in 1 2; do
  for case in "existing non-empty out:$fixture/ckpt-2.h5:1:$work/fresh1:--out .*/fresh1 exists and is not empty; nothing was overwritten" \
              "out is a file:$fixture/ckpt-2.h5:1:$work/afile:--out .*/afile exists and is not a directory" \
              "client out of range:$fixture/ckpt-2.h5:4:$work/new:--client 4 is out of range: checkpoint .* holds clients 0\.\.3" \
              "missing checkpoint:$work/none.h5:0:$work/new:checkpoint .*/none\.h5 does not exist" \
              "truncated checkpoint:$truncated:0:$work/new:refused, not loaded: HDF5 cannot read it" \
              "foreign file:$src/tests/fixtures/data/pretokenized_small.h5:0:$work/new:refused, not loaded: not a mira-hpc-checkpoint file" \
              "corrupted slice:$work/flipped.h5:2:$work/new:refused, not loaded: dataset /adapters/mlp\.c_fc/lora_A client 2 CRC32C mismatch"; do
    IFS=: read -r name ck client out regex <<<"$case"
    set +e
    "$mpiexec" -n "$np" "$bin" export --checkpoint "$ck" --client "$client" --out "$out" >"$work/r.out" 2>"$work/r.err"
    rc=$?
    set -e
    expect_refusal "export $name (np $np)" "$rc" "$work/r.out" "$work/r.err" "$regex"
    [ ! -e "$work/new" ] || fail "export $name created $work/new"
  done
done
[ "$(cat "$work/fresh1"/* | cksum)" = "$sum_before" ] || fail "a refused export changed the existing folder"
[ "$(cat "$work/afile")" = keep ] || fail "a refused export changed a file"
if ls -A "$work" | grep -q '\.tmp-'; then fail "a temporary export folder was left behind: $(ls -A "$work")"; fi
echo "ok: refusals left everything as it was"

# A fresh run's checkpoint exports too (preset base model: a note says so), into nested new folders.
train_short "$mpiexec" "$bin" "$work/run"
"$mpiexec" -n 1 "$bin" export --checkpoint "$work/run/checkpoints" --client 7 --out "$work/a/b/c7" >"$work/x.out" 2>"$work/x.err" ||
  { cat "$work/x.err"; fail "export from a fresh run failed"; }
grep -q 'note: the base model was preset:tiny' "$work/x.err" || fail "no note about the preset base model"
grep -q '"r": 4' "$work/a/b/c7/adapter_config.json" || fail "r is not 4"
grep -q '"lora_alpha": 8,' "$work/a/b/c7/adapter_config.json" || fail "lora_alpha is not the integer 8"
echo "ok: export from a fresh run"

# A run on a base model given by a relative model.path stores it absolute (normalised), so the
# exported base_model_name_or_path names the folder from any working directory.
train_short "$mpiexec" "$bin" "$work/rel" --run.clients 4 --federation.sample_fraction 0.5 --run.rounds 1 \
  --model.path tests/fixtures/../fixtures/model/gpt2_tiny_fp32/
"$mpiexec" -n 1 "$bin" export --checkpoint "$work/rel/checkpoints" --client 0 --out "$work/rel0" >"$work/x.out" 2>"$work/x.err" ||
  { cat "$work/x.err"; fail "export from the relative-model.path run failed"; }
grep -q "\"base_model_name_or_path\": \"$(pwd -P)/tests/fixtures/model/gpt2_tiny_fp32\"" "$work/rel0/adapter_config.json" ||
  { cat "$work/rel0/adapter_config.json"; fail "base_model_name_or_path is not the absolute model folder"; }
echo "ok: a relative model.path is exported as $(pwd -P)/tests/fixtures/model/gpt2_tiny_fp32"
