# Helpers shared by the tools tests (sourced): failing with context, checking a refusal, a short
# training run and corrupting one byte of a dataset.
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect_refusal NAME RC STDOUT STDERR REGEX: exit code 2, stdout empty, exactly one line on stderr
# that starts with "mira_hpc: error:" and matches REGEX (printed once whatever the rank count;
# mpirun's own notice about the non-zero exit code is ignored).
expect_refusal() {
  local name=$1 rc=$2 out=$3 err=$4 regex=$5
  [ "$rc" -eq 2 ] || { cat "$out" "$err" >&2; fail "$name: exit code $rc, expected 2"; }
  [ ! -s "$out" ] || { cat "$out" >&2; fail "$name: printed on stdout"; }
  local n
  n=$(grep -c '^mira_hpc: error: ' "$err" || true)
  [ "$n" -eq 1 ] || { cat "$err" >&2; fail "$name: $n error lines, expected exactly 1"; }
  grep '^mira_hpc: error: ' "$err" | grep -Eq -- "$regex" || { cat "$err" >&2; fail "$name: message does not match /$regex/"; }
  echo "ok: $name: $(grep '^mira_hpc: error: ' "$err")"
}

# train_short MPIEXEC BIN DIR [args...]: a short deterministic run writing DIR/checkpoints; without
# args K = 8 clients, half sampled, 3 rounds.
train_short() {
  local mpiexec=$1 bin=$2 dir=$3
  shift 3
  [ $# -gt 0 ] || set -- --run.clients 8 --federation.sample_fraction 0.5 --run.rounds 3
  "$mpiexec" -n 2 "$bin" train --train.mode steps --train.local_steps 2 --train.batch_size 4 --lora.rank 4 \
    --data.examples_per_client 12 --log-level warn --run.output "$dir" "$@" >"$dir.log" 2>&1 ||
    { cat "$dir.log" >&2; fail "training run for $dir failed"; }
}

# flip_byte FILE DATASET: inverts one byte in the middle of DATASET's stored data (found with h5dump).
flip_byte() {
  local file=$1 dset=$2 offset size pos byte
  offset=$(h5dump -p -H -d "$dset" "$file" | awk '$1 == "OFFSET" {print $2; exit}')
  size=$(h5dump -p -H -d "$dset" "$file" | awk '$1 == "SIZE" {print $2; exit}')
  [ -n "$offset" ] && [ -n "$size" ] || fail "no storage offset for $dset in $file"
  pos=$((offset + size / 2))
  byte=$(od -An -tu1 -j "$pos" -N1 "$file" | tr -d ' ')
  printf "$(printf '\\%03o' $((255 - byte)))" | dd of="$file" bs=1 seek="$pos" conv=notrunc status=none
}
