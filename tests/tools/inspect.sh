#!/usr/bin/env bash
# `mira_hpc inspect` on real checkpoints: a short run's checkpoint (1 and 2 ranks print the same
# report once), the committed io fixture (optimiser state + data cursor), a run with K = 20 (summary +
# truncated similarity table), and refusals with exit code 2 and one line: a missing file, a text
# file, a truncated file, a foreign HDF5 file, a flipped byte in a client's adapter (CRC32C).
# usage: inspect.sh MPIEXEC MIRA_HPC SOURCE_DIR
set -euo pipefail
mpiexec=$1 bin=$2 src=$3
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

train_short "$mpiexec" "$bin" "$work/run"
ckpt=$work/run/checkpoints
"$mpiexec" -n 1 "$bin" inspect "$ckpt" >"$work/np1.txt" 2>"$work/np1.err" || { cat "$work/np1.err"; fail "inspect exit code $?"; }
cat "$work/np1.txt"
for want in '^checkpoint   .*/ckpt-3\.h5$' '^round        3 ' '^algorithm    mira$' '^clients      8$' \
            '^lora         rank = 4, alpha = 8' '^  /adapters/attn\.c_attn/lora_A +\[8, 2, 4, 64\] +float32$' \
            '^  /adapters/attn\.c_attn/lora_B +\[8, 2, 192, 4\] +float32$' '^  /metrics/train_loss +\[3, 8\] +float64$' \
            '^  /graph/weights +\[8, 8\] +float64$' '^cosine similarity of the clients. whole flat adapters' \
            '^cosine similarity of the lora_B parts only' '^pairs: 28; mean ' '^     7  [01]\.[0-9]{4} '; do
  grep -Eq -- "$want" "$work/np1.txt" || fail "inspect output lacks /$want/"
done
# One row per client in the client table, and a symmetric 8 x 8 table with 1 on the diagonal.
[ "$(grep -Ec '^ +[0-7] +[0-9]+ .*\(r[0-9]+\)' "$work/np1.txt")" -ge 6 ] || fail "client table rows missing"
awk '/^cosine similarity of the clients. whole/{t=1; next} t && /^ +[0-7] +(-?[01]\.[0-9][0-9][0-9][0-9]|-) /{print; n++} n==8{exit}' "$work/np1.txt" >"$work/table"
[ "$(wc -l <"$work/table")" -eq 8 ] || fail "cosine table has not 8 rows"
awk '{for (j = 2; j <= NF; j++) c[NR-1, j-2] = $j} END {for (i = 0; i < 8; i++) {if (c[i, i] != "1.0000") exit 1;
      for (j = 0; j < 8; j++) if (c[i, j] != c[j, i]) exit 1}}' "$work/table" || fail "cosine table not symmetric with unit diagonal"
"$mpiexec" -n 2 "$bin" inspect "$ckpt/ckpt-3.h5" >"$work/np2.txt" 2>"$work/np2.err" || fail "inspect on 2 ranks failed"
diff "$work/np1.txt" "$work/np2.txt" || fail "2 ranks print another report than 1 rank"
echo "ok: report identical on 1 and 2 ranks"

# The committed fixture of the checkpoint format: optimiser state and data cursor are listed.
"$mpiexec" -n 1 "$bin" inspect "$src/tests/fixtures/io" >"$work/fixture.txt" 2>&1 || { cat "$work/fixture.txt"; fail "inspect fixture"; }
grep -Eq '^  /optimizer/step +\[3\] +int64$' "$work/fixture.txt" || { cat "$work/fixture.txt"; fail "no /optimizer/step"; }
grep -Eq '^  /data/cursor +\[3, 3\] +int64$' "$work/fixture.txt" || fail "no /data/cursor"
echo "ok: io fixture"

# K = 20: summary + the first 16 clients.
train_short "$mpiexec" "$bin" "$work/big" --run.clients 20 --run.rounds 1 --federation.sample_fraction 0.2
"$mpiexec" -n 1 "$bin" inspect "$work/big/checkpoints" >"$work/big.txt" 2>&1 || { cat "$work/big.txt"; fail "inspect K=20"; }
grep -q '^table truncated to the first 16 of 20 clients$' "$work/big.txt" || fail "no truncation note for K = 20"
grep -q '^pairs: 190; ' "$work/big.txt" || fail "summary over 190 pairs missing"
grep -q '^   \.\.\.  (4 more rows and columns)$' "$work/big.txt" || fail "truncated table tail missing"
echo "ok: K = 20 summary and truncated table"

# Refusals: exit code 2, one line, on 1 and 2 ranks.
echo "not a checkpoint" >"$work/text.h5"
head -c 4000 "$ckpt/ckpt-3.h5" >"$work/truncated.h5"
cp "$ckpt/ckpt-3.h5" "$work/flipped.h5"
flip_byte "$work/flipped.h5" /adapters/attn.c_proj/lora_B
for np in 1 2; do
  for case in "missing:$work/none.h5:does not exist" \
              "text:$work/text.h5:refused, not loaded: HDF5 cannot read it" \
              "truncated:$work/truncated.h5:refused, not loaded: HDF5 cannot read it: truncated file" \
              "foreign:$src/tests/fixtures/data/pretokenized_small.h5:refused, not loaded: not a mira-hpc-checkpoint file" \
              "flipped:$work/flipped.h5:refused, not loaded: dataset /adapters/attn\.c_proj/lora_B client [0-9]+ CRC32C mismatch"; do
    IFS=: read -r name file regex <<<"$case"
    set +e
    "$mpiexec" -n "$np" "$bin" inspect "$file" >"$work/r.out" 2>"$work/r.err"
    rc=$?
    set -e
    expect_refusal "inspect $name (np $np)" "$rc" "$work/r.out" "$work/r.err" "$regex"
  done
done
